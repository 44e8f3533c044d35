package ipc

import (
	"encoding"
	"encoding/binary"
	"math"
	"reflect"
	"slices"
	"sync"
	"unsafe"

	"github.com/vmihailenco/msgpack/v5"
)

// The encoder of Marshal and AppendMarshal: the same bytes as
// vmihailenco/msgpack with the `msgpack` struct tag and sorted map keys
// (TestEncodeMatchesReference compares them on every message type), made
// with one plan per Go type, built once from the tags, and appended
// straight to the caller's buffer. The rules, as vmihailenco's:
//   - a struct is a map of its exported fields, by tag name, in field order;
//   - int and uint take the shortest form of their value; the sized kinds
//     (int8…int64, uint8…uint64) always their own width;
//   - nil pointers, slices and maps are nil; []byte is bin, string is str;
//   - a map's keys, strings, go in sorted order (vmihailenco takes Go's
//     random order unless told to sort; sorted makes a message's bytes
//     depend on its value only).
// A type this does not cover (an interface, an embedded struct, a tag with
// options, a type with its own marshalling) has no plan, and such a value
// goes to vmihailenco whole; no message type needs that today.

// encodeFunc appends the encoding of the variable at p, of the type the
// plan was built for, to b. A pointer rather than a reflect.Value for the
// reason decodeFunc gives: reflect's checks on every field were most of an
// encoding's time. Slices and maps of anything but bytes still go through
// reflect (reflect.NewAt).
type encodeFunc func(b []byte, p unsafe.Pointer) []byte

// encPlans holds complete plans only, as plans does for decoding; a type
// with no plan maps to a nil encodeFunc.
var (
	encPlans   sync.Map // reflect.Type → encodeFunc
	encPlansMu sync.Mutex
)

// appendEncode appends the encoding of v to b; ok is false when v's type
// has no plan.
func appendEncode(b []byte, v any) (out []byte, ok bool) {
	rv := reflect.ValueOf(v)
	if !rv.IsValid() {
		return append(b, 0xc0), true
	}
	if rv.Kind() == reflect.Pointer && !rv.IsNil() {
		// What every caller passes: the plan reads the variable v points to.
		f := encPlanOf(rv.Type().Elem())
		if f == nil {
			return b, false
		}
		return f(b, rv.UnsafePointer()), true
	}
	f := encPlanOf(rv.Type())
	if f == nil {
		return b, false
	}
	// The plan reads a variable: make one holding v.
	hold := reflect.New(rv.Type())
	hold.Elem().Set(rv)
	return f(b, hold.UnsafePointer()), true
}

func encPlanOf(t reflect.Type) encodeFunc {
	if f, ok := encPlans.Load(t); ok {
		return f.(encodeFunc)
	}
	encPlansMu.Lock()
	defer encPlansMu.Unlock()
	eb := encBuilder{done: map[reflect.Type]encodeFunc{}, pending: map[reflect.Type]*encodeFunc{}}
	f := eb.plan(t)
	if eb.unsupported {
		f = nil
		encPlans.Store(t, f)
		return nil
	}
	for t, f := range eb.done {
		encPlans.Store(t, f)
	}
	return f
}

// encBuilder builds the plans of one type and of the types in it; one
// type without a plan leaves the whole tree without one.
type encBuilder struct {
	done        map[reflect.Type]encodeFunc
	pending     map[reflect.Type]*encodeFunc
	unsupported bool
}

func (eb *encBuilder) plan(t reflect.Type) encodeFunc {
	if f, ok := encPlans.Load(t); ok {
		if f.(encodeFunc) == nil {
			eb.unsupported = true
		}
		return f.(encodeFunc)
	}
	if f, ok := eb.done[t]; ok {
		return f
	}
	if p, ok := eb.pending[t]; ok {
		return func(b []byte, v unsafe.Pointer) []byte { return (*p)(b, v) }
	}
	p := new(encodeFunc)
	eb.pending[t] = p
	*p = eb.build(t)
	delete(eb.pending, t)
	eb.done[t] = *p
	return *p
}

var (
	customEncoder   = reflect.TypeFor[msgpack.CustomEncoder]()
	marshaler       = reflect.TypeFor[msgpack.Marshaler]()
	binaryMarshaler = reflect.TypeFor[encoding.BinaryMarshaler]()
	textMarshaler   = reflect.TypeFor[encoding.TextMarshaler]()
)

// ownMarshalling reports whether vmihailenco would call a method of t (or
// *t) instead of encoding it by kind.
func ownMarshalling(t reflect.Type) bool {
	for _, i := range []reflect.Type{customEncoder, marshaler, binaryMarshaler, textMarshaler} {
		if t.Implements(i) || reflect.PointerTo(t).Implements(i) {
			return true
		}
	}
	return false
}

func (eb *encBuilder) build(t reflect.Type) encodeFunc {
	if ownMarshalling(t) {
		eb.unsupported = true
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		return eb.structPlan(t)
	case reflect.Pointer:
		elem := eb.plan(t.Elem())
		return func(b []byte, p unsafe.Pointer) []byte {
			if e := *(*unsafe.Pointer)(p); e != nil {
				return elem(b, e)
			}
			return append(b, 0xc0)
		}
	case reflect.String:
		return func(b []byte, p unsafe.Pointer) []byte { return appendStr(b, *(*string)(p)) }
	case reflect.Bool:
		return func(b []byte, p unsafe.Pointer) []byte {
			if *(*bool)(p) {
				return append(b, 0xc3)
			}
			return append(b, 0xc2)
		}
	case reflect.Int:
		return func(b []byte, p unsafe.Pointer) []byte { return appendInt(b, int64(*(*int)(p))) }
	case reflect.Int8:
		return func(b []byte, p unsafe.Pointer) []byte { return append(b, 0xd0, byte(*(*int8)(p))) }
	case reflect.Int16:
		return func(b []byte, p unsafe.Pointer) []byte {
			return binary.BigEndian.AppendUint16(append(b, 0xd1), uint16(*(*int16)(p)))
		}
	case reflect.Int32:
		return func(b []byte, p unsafe.Pointer) []byte {
			return binary.BigEndian.AppendUint32(append(b, 0xd2), uint32(*(*int32)(p)))
		}
	case reflect.Int64:
		return func(b []byte, p unsafe.Pointer) []byte {
			return binary.BigEndian.AppendUint64(append(b, 0xd3), uint64(*(*int64)(p)))
		}
	case reflect.Uint:
		return func(b []byte, p unsafe.Pointer) []byte { return appendUint(b, uint64(*(*uint)(p))) }
	case reflect.Uint8:
		return func(b []byte, p unsafe.Pointer) []byte { return append(b, 0xcc, *(*uint8)(p)) }
	case reflect.Uint16:
		return func(b []byte, p unsafe.Pointer) []byte {
			return binary.BigEndian.AppendUint16(append(b, 0xcd), *(*uint16)(p))
		}
	case reflect.Uint32:
		return func(b []byte, p unsafe.Pointer) []byte {
			return binary.BigEndian.AppendUint32(append(b, 0xce), *(*uint32)(p))
		}
	case reflect.Uint64:
		return func(b []byte, p unsafe.Pointer) []byte {
			return binary.BigEndian.AppendUint64(append(b, 0xcf), *(*uint64)(p))
		}
	case reflect.Float32:
		return func(b []byte, p unsafe.Pointer) []byte {
			return binary.BigEndian.AppendUint32(append(b, 0xca), math.Float32bits(*(*float32)(p)))
		}
	case reflect.Float64:
		return func(b []byte, p unsafe.Pointer) []byte {
			return binary.BigEndian.AppendUint64(append(b, 0xcb), math.Float64bits(*(*float64)(p)))
		}
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return func(b []byte, p unsafe.Pointer) []byte {
				if v := *(*[]byte)(p); v != nil {
					return appendBin(b, v)
				}
				return append(b, 0xc0)
			}
		}
		elem := eb.plan(t.Elem())
		return func(b []byte, p unsafe.Pointer) []byte {
			v := reflect.NewAt(t, p).Elem()
			if v.IsNil() {
				return append(b, 0xc0)
			}
			n := v.Len()
			b = appendLen(b, n, 0x90, 0xdc)
			for i := 0; i < n; i++ {
				b = elem(b, v.Index(i).Addr().UnsafePointer())
			}
			return b
		}
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			break
		}
		elem := eb.plan(t.Elem())
		return func(b []byte, p unsafe.Pointer) []byte {
			v := reflect.NewAt(t, p).Elem()
			if v.IsNil() {
				return append(b, 0xc0)
			}
			keys := v.MapKeys()
			slices.SortFunc(keys, func(x, y reflect.Value) int {
				switch xs, ys := x.String(), y.String(); {
				case xs < ys:
					return -1
				case xs > ys:
					return 1
				}
				return 0
			})
			b = appendLen(b, len(keys), 0x80, 0xde)
			val := reflect.New(t.Elem())
			for _, k := range keys {
				b = appendStr(b, k.String())
				val.Elem().Set(v.MapIndex(k))
				b = elem(b, val.UnsafePointer())
			}
			return b
		}
	}
	eb.unsupported = true
	return nil
}

type fieldEnc struct {
	key    []byte // the field name, encoded
	offset uintptr
	encode encodeFunc
}

func (eb *encBuilder) structPlan(t reflect.Type) encodeFunc {
	var fields []fieldEnc
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		name, tagged := sf.Tag.Lookup("msgpack")
		switch {
		case sf.Anonymous || (tagged && (name == "" || name[0] == ',' || slices.Contains([]byte(name), ','))):
			// Embedded structs are inlined and tag options change the
			// encoding, in vmihailenco: none is in a message.
			eb.unsupported = true
			return nil
		case !sf.IsExported() || name == "-":
			continue
		case !tagged:
			name = sf.Name
		}
		fields = append(fields, fieldEnc{key: appendStr(nil, name), offset: sf.Offset, encode: eb.plan(sf.Type)})
	}
	return func(b []byte, p unsafe.Pointer) []byte {
		b = appendLen(b, len(fields), 0x80, 0xde)
		for _, f := range fields {
			b = append(b, f.key...)
			b = f.encode(b, unsafe.Add(p, f.offset))
		}
		return b
	}
}

// appendLen appends an array (fix 0x90, 16-bit 0xdc) or map (0x80, 0xde)
// header; the 32-bit form's code follows the 16-bit one's.
func appendLen(b []byte, n int, fix, c16 byte) []byte {
	switch {
	case n < 16:
		return append(b, fix|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, c16), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, c16+1), uint32(n))
}

func appendStr(b []byte, s string) []byte {
	switch n := len(s); {
	case n < 32:
		b = append(b, 0xa0|byte(n))
	case n <= math.MaxUint8:
		b = append(b, 0xd9, byte(n))
	case n <= math.MaxUint16:
		b = binary.BigEndian.AppendUint16(append(b, 0xda), uint16(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, 0xdb), uint32(n))
	}
	return append(b, s...)
}

func appendBin(b, p []byte) []byte {
	switch n := len(p); {
	case n <= math.MaxUint8:
		b = append(b, 0xc4, byte(n))
	case n <= math.MaxUint16:
		b = binary.BigEndian.AppendUint16(append(b, 0xc5), uint16(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, 0xc6), uint32(n))
	}
	return append(b, p...)
}

// appendUint is the shortest form of n.
func appendUint(b []byte, n uint64) []byte {
	switch {
	case n <= 0x7f:
		return append(b, byte(n))
	case n <= math.MaxUint8:
		return append(b, 0xcc, byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xcd), uint16(n))
	case n <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, 0xce), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xcf), n)
}

// appendInt is the shortest form of n; vmihailenco writes a non-negative
// int as its uint.
func appendInt(b []byte, n int64) []byte {
	switch {
	case n >= 0:
		return appendUint(b, uint64(n))
	case n >= -32:
		return append(b, byte(n))
	case n >= math.MinInt8:
		return append(b, 0xd0, byte(n))
	case n >= math.MinInt16:
		return binary.BigEndian.AppendUint16(append(b, 0xd1), uint16(n))
	case n >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(b, 0xd2), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xd3), uint64(n))
}
