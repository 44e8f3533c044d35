package sdk

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/risor-io/risor/object"

	"github.com/rex-sh/rex/ipc"
)

// The log, metrics and alarms modules only append to the run's Output; the
// broker forwards what they collected in the result. None of them reaches
// the host.

func newLogModule(out *Output) *object.Module {
	fn := func(level string) object.Object {
		return object.NewBuiltin(level, func(ctx context.Context, args ...object.Object) object.Object {
			if len(args) != 1 {
				return object.NewArgsError("log."+level, 1, len(args))
			}
			msg := text(args[0])
			if len(msg) > MaxLogMessage {
				msg = strings.ToValidUTF8(msg[:MaxLogMessage], "") + truncMarker
			}
			if err := out.addLog(ipc.LogLine{Level: level, Message: msg, Time: out.timestamp()}); err != nil {
				return raise(err)
			}
			return object.Nil
		})
	}
	return object.NewBuiltinsModule("log", map[string]object.Object{
		"debug": fn("debug"),
		"info":  fn("info"),
		"warn":  fn("warn"),
		"error": fn("error"),
	})
}

// text is how a value reads in a log line: strings as they are, everything
// else in its printed form.
func text(obj object.Object) string {
	if s, ok := obj.(*object.String); ok {
		return s.Value()
	}
	return obj.Inspect()
}

// checkName refuses empty names and the "rex" prefix that rex keeps for its
// own records, whatever the case.
func checkName(fn, what, name string) *object.Error {
	if name == "" {
		return object.Errorf("value error: %s() needs a non-empty %s", fn, what)
	}
	if strings.HasPrefix(strings.ToLower(name), "rex") {
		return object.Errorf("value error: %s() %s %q is reserved: names starting with \"rex\" belong to rex", fn, what, name)
	}
	if len(name) > 256 {
		return object.Errorf("value error: %s() %s is longer than 256 bytes", fn, what)
	}
	return nil
}

func newMetricsModule(out *Output) *object.Module {
	publish := func(ctx context.Context, args ...object.Object) object.Object {
		const fn = "metrics.publish"
		pos, o, oerr := splitArgs(fn, args, 2, "unit", "dimensions")
		if oerr != nil {
			return oerr
		}
		name, oerr := stringArg(fn, pos, 0, "name")
		if oerr != nil {
			return oerr
		}
		if oerr := checkName(fn, "name", name); oerr != nil {
			return oerr
		}
		var value float64
		switch v := pos[1].(type) {
		case *object.Int:
			value = float64(v.Value())
		case *object.Float:
			value = v.Value()
		default:
			return object.TypeErrorf("type error: %s() expected a number as value (%s given)", fn, pos[1].Type())
		}
		unit, oerr := o.str("unit")
		if oerr != nil {
			return oerr
		}
		dims, oerr := dimensions(fn, o)
		if oerr != nil {
			return oerr
		}
		m := ipc.Metric{Name: name, Value: value, Unit: unit, Dimensions: dims, Time: out.timestamp()}
		if err := out.addMetric(m); err != nil {
			return raise(err)
		}
		return object.Nil
	}
	return object.NewBuiltinsModule("metrics", map[string]object.Object{
		"publish": object.NewBuiltin("publish", publish),
	})
}

// dimensions reads the dimensions option: a map of names to strings (ints,
// floats and bools are taken in their printed form).
func dimensions(fn string, o options) (map[string]string, *object.Error) {
	v, ok := o.m["dimensions"]
	if !ok || v == object.Nil {
		return nil, nil
	}
	m, ok := v.(*object.Map)
	if !ok {
		return nil, object.TypeErrorf("type error: %s() option \"dimensions\" must be a map (%s given)", fn, v.Type())
	}
	if m.Size() > MaxDimensions {
		return nil, object.Errorf("value error: %s() takes at most %d dimensions (%d given)", fn, MaxDimensions, m.Size())
	}
	out := make(map[string]string, m.Size())
	for k, val := range m.Value() {
		switch val := val.(type) {
		case *object.String:
			out[k] = val.Value()
		case *object.Int, *object.Float, *object.Bool:
			out[k] = val.Inspect()
		default:
			return nil, object.TypeErrorf("type error: %s() dimension %q must be a string (%s given)", fn, k, val.Type())
		}
		if len(k) > 256 || len(out[k]) > 256 {
			return nil, object.Errorf("value error: %s() dimension %q: names and values are at most 256 bytes", fn, k)
		}
	}
	return out, nil
}

func newAlarmsModule(out *Output) *object.Module {
	publish := func(ctx context.Context, args ...object.Object) object.Object {
		const fn = "alarms.publish"
		if len(args) != 1 && len(args) != 2 {
			return object.NewArgsRangeError(fn, 1, 2, len(args))
		}
		typ, oerr := stringArg(fn, args, 0, "type")
		if oerr != nil {
			return oerr
		}
		if oerr := checkName(fn, "type", typ); oerr != nil {
			return oerr
		}
		var details json.RawMessage
		if len(args) == 2 {
			d, err := ToJSON(args[1])
			if err != nil {
				return raise(err)
			}
			if len(d) > MaxAlarmDetails {
				return raise(ipc.Errorf(ipc.CodeLimit, "%s() details are larger than %d bytes as JSON", fn, MaxAlarmDetails))
			}
			details = d
		}
		if err := out.addAlarm(ipc.Alarm{Type: typ, Details: details, Time: out.timestamp()}); err != nil {
			return raise(err)
		}
		return object.Nil
	}
	return object.NewBuiltinsModule("alarms", map[string]object.Object{
		"publish": object.NewBuiltin("publish", publish),
	})
}
