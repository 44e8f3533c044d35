package sdk

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/risor-io/risor/object"

	"github.com/rex-sh/rex/ipc"
)

const (
	// MaxOutput caps the JSON form of a script's final value, so that the
	// WorkerResult frame stays inside ipc.MaxFrame.
	MaxOutput = 4 << 20
	// maxJSONDepth stops a self-containing list or map (l.append(l)) from
	// recursing forever.
	maxJSONDepth = 64
)

// ToJSON converts a Risor value to JSON. Nil gives nil (no output). Maps
// have their keys sorted, sets become sorted lists, byte_slices become a
// string when they are valid UTF-8 and base64 otherwise, times are RFC 3339,
// non-finite floats and anything without a JSON form (functions, modules,
// files) become their string form. Too deep or too big is an error with
// CodeInvalid or CodeLimit.
func ToJSON(obj object.Object) (json.RawMessage, error) {
	if obj == nil || obj == object.Nil {
		return nil, nil
	}
	var b bytes.Buffer
	if err := writeJSON(&b, obj, 0); err != nil {
		return nil, err
	}
	// writeJSON checks the size before each value; one big last value is
	// caught here.
	if b.Len() > MaxOutput {
		return nil, tooBig()
	}
	return json.RawMessage(b.Bytes()), nil
}

func writeJSON(b *bytes.Buffer, obj object.Object, depth int) error {
	if depth > maxJSONDepth {
		return ipc.Errorf(ipc.CodeInvalid, "value is nested deeper than %d levels (does it contain itself?)", maxJSONDepth)
	}
	if b.Len() > MaxOutput {
		return tooBig()
	}
	switch v := obj.(type) {
	case nil:
		b.WriteString("null")
	case *object.NilType:
		b.WriteString("null")
	case *object.Bool:
		b.WriteString(strconv.FormatBool(v.Value()))
	case *object.Int:
		b.WriteString(strconv.FormatInt(v.Value(), 10))
	case *object.Byte:
		b.WriteString(strconv.Itoa(int(v.Value())))
	case *object.Float:
		writeFloat(b, v.Value())
	case *object.String:
		writeString(b, v.Value())
	case *object.ByteSlice:
		writeBytes(b, v.Value())
	case *object.Buffer:
		writeBytes(b, v.Value().Bytes())
	case *object.Time:
		writeString(b, v.Value().Format(time.RFC3339Nano))
	case *object.Error:
		writeString(b, v.Value().Error())
	case *object.FloatSlice:
		b.WriteByte('[')
		for i, f := range v.Value() {
			if i > 0 {
				b.WriteByte(',')
			}
			writeFloat(b, f)
		}
		b.WriteByte(']')
	case *object.List:
		return writeList(b, v.Value(), depth)
	case *object.Set:
		return writeList(b, v.SortedItems(), depth)
	case *object.Map:
		b.WriteByte('{')
		for i, k := range v.SortedKeys() {
			if i > 0 {
				b.WriteByte(',')
			}
			writeString(b, k)
			b.WriteByte(':')
			if err := writeJSON(b, v.Get(k), depth+1); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	default:
		writeString(b, obj.Inspect())
	}
	return nil
}

func writeList(b *bytes.Buffer, items []object.Object, depth int) error {
	b.WriteByte('[')
	for i, item := range items {
		if i > 0 {
			b.WriteByte(',')
		}
		if err := writeJSON(b, item, depth+1); err != nil {
			return err
		}
	}
	b.WriteByte(']')
	return nil
}

// writeFloat writes f as a JSON number; NaN and ±Inf, which JSON lacks, are
// written as the strings "NaN", "+Inf" and "-Inf".
func writeFloat(b *bytes.Buffer, f float64) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		writeString(b, strconv.FormatFloat(f, 'g', -1, 64))
		return
	}
	out, _ := json.Marshal(f)
	b.Write(out)
}

func writeString(b *bytes.Buffer, s string) {
	out, _ := json.Marshal(s)
	b.Write(out)
}

func writeBytes(b *bytes.Buffer, p []byte) {
	if utf8.Valid(p) {
		writeString(b, string(p))
		return
	}
	writeString(b, base64.StdEncoding.EncodeToString(p))
}

// DecodeArgs turns the run's args (a JSON object) into the `args` map.
// Numbers that are integral and fit an int64 become ints, others floats;
// null becomes nil. Empty input gives an empty map.
func DecodeArgs(raw []byte) (*object.Map, error) {
	out := object.NewMap(map[string]object.Object{})
	if len(bytes.TrimSpace(raw)) == 0 {
		return out, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, ipc.Errorf(ipc.CodeInvalid, "args are not valid JSON: %v", err)
	}
	if dec.More() {
		return nil, ipc.Errorf(ipc.CodeInvalid, "args hold more than one JSON value")
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, ipc.Errorf(ipc.CodeInvalid, "args must be a JSON object")
	}
	for k, val := range m {
		out.Set(k, fromJSON(val))
	}
	return out, nil
}

func fromJSON(v any) object.Object {
	switch v := v.(type) {
	case nil:
		return object.Nil
	case bool:
		return object.NewBool(v)
	case string:
		return object.NewString(v)
	case json.Number:
		if i, err := strconv.ParseInt(string(v), 10, 64); err == nil {
			return object.NewInt(i)
		}
		f, err := v.Float64()
		if err == nil && f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			return object.NewInt(int64(f))
		}
		return object.NewFloat(f)
	case []any:
		items := make([]object.Object, len(v))
		for i, item := range v {
			items[i] = fromJSON(item)
		}
		return object.NewList(items)
	case map[string]any:
		m := make(map[string]object.Object, len(v))
		for k, item := range v {
			m[k] = fromJSON(item)
		}
		return object.NewMap(m)
	default:
		return object.NewString(fmt.Sprint(v))
	}
}

func tooBig() *ipc.Error {
	return ipc.Errorf(ipc.CodeLimit, "value is larger than %d bytes as JSON", MaxOutput)
}
