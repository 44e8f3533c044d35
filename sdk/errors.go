package sdk

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/risor-io/risor/object"

	"github.com/rex-sh/rex/ipc"
)

// raise turns a Go error into a raised Risor error. object.NewError keeps
// err itself as the error's value, and the VM hands that value back from
// vm.Run when nothing catches it, so the worker finds the *ipc.Error with
// errors.As and reads its code: a denial is never recognised by its text.
func raise(err error) *object.Error {
	return object.NewError(err)
}

// ExitError is raised by os.exit. It is fatal in Risor's sense, so try()
// does not swallow it: exit stops the script, as a script author expects.
type ExitError struct {
	Code int
}

func (e *ExitError) Error() string { return fmt.Sprintf("exit(%d)", e.Code) }

// IsFatal marks the error as one that try() must let through.
func (e *ExitError) IsFatal() bool { return true }

// protocolError reports a reply that does not fit its request. The broker
// is trusted, so this means a bug or a broken channel, and the run should
// end as a communication failure rather than as a script error.
func protocolError(format string, args ...any) *ipc.Error {
	return ipc.Errorf(ipc.CodeProtocol, format, args...)
}

// options is the optional trailing map of options every rex function takes.
type options struct {
	fn string
	m  map[string]object.Object
}

// splitArgs checks that fn got n positional arguments, optionally followed
// by a map of options whose keys must all be in allowed. Unknown keys are an
// error so that a typo ({recursve: true}) does not silently do less.
func splitArgs(fn string, args []object.Object, n int, allowed ...string) ([]object.Object, options, *object.Error) {
	o := options{fn: fn}
	if len(args) != n && len(args) != n+1 {
		return nil, o, object.ArgsErrorf("args error: %s() takes %d argument(s) and an optional map of options (%d given)", fn, n, len(args))
	}
	if len(args) == n {
		return args, o, nil
	}
	m, ok := args[n].(*object.Map)
	if !ok {
		return nil, o, object.TypeErrorf("type error: %s() expected a map of options as its last argument (%s given)", fn, args[n].Type())
	}
	o.m = m.Value()
	for k := range o.m {
		if !slices.Contains(allowed, k) {
			names := append([]string(nil), allowed...)
			sort.Strings(names)
			known := "none"
			if len(names) > 0 {
				known = strings.Join(names, ", ")
			}
			return nil, o, object.Errorf("value error: %s() has no option %q (options: %s)", fn, k, known)
		}
	}
	return args[:n], o, nil
}

// bool returns the boolean option key, false when absent.
func (o options) bool(key string) (bool, *object.Error) {
	v, ok := o.m[key]
	if !ok || v == object.Nil {
		return false, nil
	}
	b, ok := v.(*object.Bool)
	if !ok {
		return false, object.TypeErrorf("type error: %s() option %q must be a bool (%s given)", o.fn, key, v.Type())
	}
	return b.Value(), nil
}

// str returns the string option key, "" when absent.
func (o options) str(key string) (string, *object.Error) {
	v, ok := o.m[key]
	if !ok || v == object.Nil {
		return "", nil
	}
	s, ok := v.(*object.String)
	if !ok {
		return "", object.TypeErrorf("type error: %s() option %q must be a string (%s given)", o.fn, key, v.Type())
	}
	return s.Value(), nil
}

// bools reads several boolean options at once.
func (o options) bools(keys ...string) ([]bool, *object.Error) {
	out := make([]bool, len(keys))
	for i, k := range keys {
		b, err := o.bool(k)
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}

// stringArg returns args[i] as a string, or a type error naming fn.
func stringArg(fn string, args []object.Object, i int, what string) (string, *object.Error) {
	s, ok := args[i].(*object.String)
	if !ok {
		return "", object.TypeErrorf("type error: %s() expected a string %s (%s given)", fn, what, args[i].Type())
	}
	return s.Value(), nil
}
