package ipc

import (
	"bytes"
	"fmt"
	"math"
	"reflect"
	"sync"
	"unsafe"
)

// The decoder of Unmarshal. It reads msgpack straight from the byte slice
// into the message struct in one pass, with one plan per Go type built once
// from the same `msgpack` tags the encoder uses: the message definitions
// stay the protocol's only description. vmihailenco/msgpack, the tests'
// reference, decodes the same bytes to the same values (FuzzDecode checks
// that on every input this decoder accepts); this one is several times
// faster and stricter:
//   - a struct is a map with string keys, never an array;
//   - an unknown key is an error, and so is a repeated one;
//   - an integer outside its field's type (a negative size, an id above
//     2³²−1) is an error, never a silent wrap;
//   - a string field takes only str, a bool only true or false;
//   - msgpack nil gives the field's zero value.
//
// It accepts nothing that Check refuses (FuzzDecode checks that too): every
// length is checked against the bytes left before it is read, a container's
// count against the least room its elements need, nesting against
// MaxDepth, and a key against those already seen. Containers grow as they
// fill and never reserve more than 64 elements on a declared count. Check
// used to run first, a second walk over every byte: it was a third of a
// reply's decoding time.

type bdec struct {
	b     []byte
	off   int
	depth int  // of the innermost container being read, as Check counts it
	alias bool // []byte fields alias b instead of copying (UnmarshalNoCopy)
}

// decodeFunc decodes one value into the variable at p, whose type is the
// one the plan was built for.
//
// Why a pointer and not a reflect.Value: reflect's Field and Set* check
// flags and kinds on every call, and those checks were most of the time a
// reply took to decode (a stat reply, 19 fields, took 2.7 µs, a fifth of
// the worker's own share of a call). Where each write goes is fixed when
// the plan is built, from the reflect.Type alone: a field's offset and its
// kind. The input only chooses which of the plan's fields gets a value and
// what value, never an address or a type, so a hostile peer has no more
// reach than through reflect. Slices and maps of anything but bytes still
// go through reflect, over the same variable (reflect.NewAt).
type decodeFunc func(d *bdec, p unsafe.Pointer) error

// plans holds complete plans only: a plan is published once every plan it
// calls is built, so a decoder never meets a half-built one, whichever
// goroutine uses a type first.
var (
	plans   sync.Map // reflect.Type → decodeFunc
	plansMu sync.Mutex
)

// unmarshal decodes b into v, a pointer to a struct.
func unmarshal(b []byte, v any, alias bool) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("%w: decode into %T", ErrMalformed, v)
	}
	d := bdec{b: b, alias: alias}
	if err := planOf(rv.Type().Elem())(&d, rv.UnsafePointer()); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if d.off != len(b) {
		return fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(b)-d.off)
	}
	return nil
}

func planOf(t reflect.Type) decodeFunc {
	if f, ok := plans.Load(t); ok {
		return f.(decodeFunc)
	}
	plansMu.Lock()
	defer plansMu.Unlock()
	b := planBuilder{done: map[reflect.Type]decodeFunc{}, pending: map[reflect.Type]*decodeFunc{}}
	f := b.plan(t)
	for t, f := range b.done {
		plans.Store(t, f)
	}
	return f
}

// planBuilder builds the plans of one type and of the types in it.
type planBuilder struct {
	done    map[reflect.Type]decodeFunc
	pending map[reflect.Type]*decodeFunc // being built: a recursive type refers to itself
}

func (b *planBuilder) plan(t reflect.Type) decodeFunc {
	if f, ok := plans.Load(t); ok {
		return f.(decodeFunc)
	}
	if f, ok := b.done[t]; ok {
		return f
	}
	if p, ok := b.pending[t]; ok {
		// Filled in before the plan that refers to it is published.
		return func(d *bdec, v unsafe.Pointer) error { return (*p)(d, v) }
	}
	p := new(decodeFunc)
	b.pending[t] = p
	*p = b.build(t)
	delete(b.pending, t)
	b.done[t] = *p
	return *p
}

func (b *planBuilder) build(t reflect.Type) decodeFunc {
	switch t.Kind() {
	case reflect.Struct:
		return b.structPlan(t)
	case reflect.Pointer:
		elem := b.plan(t.Elem())
		return func(d *bdec, p unsafe.Pointer) error {
			if d.isNil() {
				*(*unsafe.Pointer)(p) = nil
				return nil
			}
			n := reflect.New(t.Elem()).UnsafePointer()
			if err := elem(d, n); err != nil {
				return err
			}
			*(*unsafe.Pointer)(p) = n
			return nil
		}
	case reflect.String:
		return func(d *bdec, p unsafe.Pointer) error {
			s, err := d.str()
			if err == nil {
				*(*string)(p) = s
			}
			return err
		}
	case reflect.Bool:
		return func(d *bdec, p unsafe.Pointer) error {
			c, err := d.next()
			switch {
			case err != nil:
				return err
			case c == 0xc0 || c == 0xc2:
				*(*bool)(p) = false
			case c == 0xc3:
				*(*bool)(p) = true
			default:
				return d.wrong(c, "bool")
			}
			return nil
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		bits, store := t.Bits(), storeInt(t.Kind())
		return func(d *bdec, p unsafe.Pointer) error {
			n, neg, err := d.integer()
			if err != nil {
				return err
			}
			lim := uint64(1) << (bits - 1)
			if (!neg && n >= lim) || (neg && n > lim) {
				return fmt.Errorf("integer out of range for %s at offset %d", t, d.off)
			}
			if neg {
				store(p, -int64(n)) // for -2⁶³ the negation wraps to the right value
			} else {
				store(p, int64(n))
			}
			return nil
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		bits, store := t.Bits(), storeUint(t.Kind())
		return func(d *bdec, p unsafe.Pointer) error {
			n, neg, err := d.integer()
			if err != nil {
				return err
			}
			if neg || (bits < 64 && n >= uint64(1)<<bits) {
				return fmt.Errorf("integer out of range for %s at offset %d", t, d.off)
			}
			store(p, n)
			return nil
		}
	case reflect.Float64:
		return func(d *bdec, p unsafe.Pointer) error {
			f, err := d.float()
			if err == nil {
				*(*float64)(p) = f
			}
			return err
		}
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return func(d *bdec, p unsafe.Pointer) error {
				b, isNil, err := d.bytes()
				if err != nil {
					return err
				}
				if isNil {
					*(*[]byte)(p) = nil
					return nil
				}
				if !d.alias {
					// Clone allocates without zeroing first: a 4 KiB
					// read costs one copy, not a clear and a copy.
					b = bytes.Clone(b)
				}
				*(*[]byte)(p) = b
				return nil
			}
		}
		elem := b.plan(t.Elem())
		return func(d *bdec, p unsafe.Pointer) error {
			v := reflect.NewAt(t, p).Elem()
			n, isNil, err := d.arrayLen()
			if err != nil || isNil {
				v.SetZero()
				return err
			}
			s := reflect.MakeSlice(t, 0, min(n, 64))
			for i := 0; i < n; i++ {
				s = reflect.Append(s, reflect.Zero(t.Elem()))
				if err := elem(d, s.Index(i).Addr().UnsafePointer()); err != nil {
					return err
				}
			}
			v.Set(s)
			d.depth--
			return nil
		}
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			break
		}
		elem := b.plan(t.Elem())
		return func(d *bdec, p unsafe.Pointer) error {
			v := reflect.NewAt(t, p).Elem()
			n, isNil, err := d.mapLen()
			if err != nil || isNil {
				v.SetZero()
				return err
			}
			m := reflect.MakeMapWithSize(t, min(n, 64))
			key := reflect.New(t.Key()).Elem()
			val := reflect.New(t.Elem())
			for i := 0; i < n; i++ {
				k, err := d.str()
				if err != nil {
					return err
				}
				key.SetString(k)
				val.Elem().SetZero()
				if err := elem(d, val.UnsafePointer()); err != nil {
					return err
				}
				m.SetMapIndex(key, val.Elem())
				if m.Len() != i+1 {
					return fmt.Errorf("duplicate key %q at offset %d", k, d.off)
				}
			}
			v.Set(m)
			d.depth--
			return nil
		}
	}
	return func(d *bdec, p unsafe.Pointer) error {
		return fmt.Errorf("no decoder for %s", t)
	}
}

// storeInt and storeUint write an integer already checked against the
// kind's range into a variable of that kind.
func storeInt(k reflect.Kind) func(p unsafe.Pointer, n int64) {
	switch k {
	case reflect.Int8:
		return func(p unsafe.Pointer, n int64) { *(*int8)(p) = int8(n) }
	case reflect.Int16:
		return func(p unsafe.Pointer, n int64) { *(*int16)(p) = int16(n) }
	case reflect.Int32:
		return func(p unsafe.Pointer, n int64) { *(*int32)(p) = int32(n) }
	case reflect.Int64:
		return func(p unsafe.Pointer, n int64) { *(*int64)(p) = n }
	}
	return func(p unsafe.Pointer, n int64) { *(*int)(p) = int(n) }
}

func storeUint(k reflect.Kind) func(p unsafe.Pointer, n uint64) {
	switch k {
	case reflect.Uint8:
		return func(p unsafe.Pointer, n uint64) { *(*uint8)(p) = uint8(n) }
	case reflect.Uint16:
		return func(p unsafe.Pointer, n uint64) { *(*uint16)(p) = uint16(n) }
	case reflect.Uint32:
		return func(p unsafe.Pointer, n uint64) { *(*uint32)(p) = uint32(n) }
	case reflect.Uint64:
		return func(p unsafe.Pointer, n uint64) { *(*uint64)(p) = n }
	}
	return func(p unsafe.Pointer, n uint64) { *(*uint)(p) = uint(n) }
}

type fieldPlan struct {
	name   string
	offset uintptr
	decode decodeFunc
}

// maxFields bounds a message struct's fields, so that the decoder can note
// the keys it has seen in one word.
const maxFields = 64

func (b *planBuilder) structPlan(t reflect.Type) decodeFunc {
	var fields []fieldPlan
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		name := sf.Tag.Get("msgpack")
		if !sf.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		fields = append(fields, fieldPlan{name: name, offset: sf.Offset, decode: b.plan(sf.Type)})
	}
	if len(fields) > maxFields {
		return func(d *bdec, p unsafe.Pointer) error {
			return fmt.Errorf("%s has more than %d fields", t, maxFields)
		}
	}
	return func(d *bdec, p unsafe.Pointer) error {
		n, isNil, err := d.mapLen()
		if err != nil {
			return err
		}
		if isNil {
			typedmemclr(t, p)
			return nil
		}
		// Keys are looked for from where the last one was found: the
		// encoder writes them in field order, so the first try hits.
		var seen uint64
		next := 0
		for i := 0; i < n; i++ {
			k, err := d.strTemp()
			if err != nil {
				return err
			}
			j, found := next, false
			for range fields {
				if fields[j].name == string(k) {
					found = true
					break
				}
				if j++; j == len(fields) {
					j = 0
				}
			}
			switch {
			case !found:
				return fmt.Errorf("unknown field %q in %s", k, t.Name())
			case seen&(1<<j) != 0:
				return fmt.Errorf("duplicate key %q at offset %d", k, d.off)
			}
			seen |= 1 << j
			if err := fields[j].decode(d, unsafe.Add(p, fields[j].offset)); err != nil {
				return err
			}
			if next = j + 1; next == len(fields) {
				next = 0
			}
		}
		d.depth--
		return nil
	}
}

// typedmemclr zeroes the variable of type t at p.
func typedmemclr(t reflect.Type, p unsafe.Pointer) { reflect.NewAt(t, p).Elem().SetZero() }

// The primitives below check every length against the bytes left before
// they read, so that a short or lying message fails cleanly.

func (d *bdec) short() error {
	return fmt.Errorf("message ends early at offset %d", d.off)
}

func (d *bdec) next() (byte, error) {
	if d.off >= len(d.b) {
		return 0, d.short()
	}
	c := d.b[d.off]
	d.off++
	return c, nil
}

func (d *bdec) isNil() bool {
	if d.off < len(d.b) && d.b[d.off] == 0xc0 {
		d.off++
		return true
	}
	return false
}

func (d *bdec) take(n uint64) ([]byte, error) {
	if n > uint64(len(d.b)-d.off) {
		return nil, fmt.Errorf("length beyond end of message at offset %d", d.off)
	}
	p := d.b[d.off : d.off+int(n)]
	d.off += int(n)
	return p, nil
}

func (d *bdec) uintN(n int) (uint64, error) {
	p, err := d.take(uint64(n))
	if err != nil {
		return 0, err
	}
	return bigEndian(p), nil
}

func (d *bdec) wrong(c byte, want string) error {
	return fmt.Errorf("%s expected, found type byte %#x at offset %d", want, c, d.off-1)
}

// integer reads any msgpack integer as a magnitude and sign; nil is 0.
func (d *bdec) integer() (n uint64, neg bool, err error) {
	c, err := d.next()
	switch {
	case err != nil:
		return 0, false, err
	case c <= 0x7f:
		return uint64(c), false, nil
	case c >= 0xe0:
		return uint64(-int64(int8(c))), true, nil
	}
	var s int64
	switch c {
	case 0xc0:
		return 0, false, nil
	case 0xcc:
		n, err = d.uintN(1)
		return n, false, err
	case 0xcd:
		n, err = d.uintN(2)
		return n, false, err
	case 0xce:
		n, err = d.uintN(4)
		return n, false, err
	case 0xcf:
		n, err = d.uintN(8)
		return n, false, err
	case 0xd0:
		n, err = d.uintN(1)
		s = int64(int8(n))
	case 0xd1:
		n, err = d.uintN(2)
		s = int64(int16(n))
	case 0xd2:
		n, err = d.uintN(4)
		s = int64(int32(n))
	case 0xd3:
		n, err = d.uintN(8)
		s = int64(n)
	default:
		return 0, false, d.wrong(c, "integer")
	}
	if err != nil {
		return 0, false, err
	}
	if s < 0 {
		return uint64(-s), true, nil // -MinInt64 wraps to its own magnitude
	}
	return uint64(s), false, nil
}

func (d *bdec) float() (float64, error) {
	if d.off < len(d.b) {
		switch d.b[d.off] {
		case 0xca:
			d.off++
			n, err := d.uintN(4)
			return float64(math.Float32frombits(uint32(n))), err
		case 0xcb:
			d.off++
			n, err := d.uintN(8)
			return math.Float64frombits(n), err
		}
	}
	n, neg, err := d.integer()
	switch {
	case err != nil:
		return 0, err
	case neg:
		return -float64(n), nil
	case n > math.MaxInt64:
		// A uint64 above int64's range: vmihailenco reads it as a negative
		// int64 first, a value no encoder meant; refuse it (a fuzz find).
		return 0, fmt.Errorf("integer out of range for float64 at offset %d", d.off)
	}
	return float64(n), nil
}

// strTemp reads a str (not nil) without copying it.
func (d *bdec) strTemp() ([]byte, error) {
	c, err := d.next()
	if err != nil {
		return nil, err
	}
	var n uint64
	switch {
	case c >= 0xa0 && c <= 0xbf:
		return d.take(uint64(c & 0x1f))
	case c == 0xd9:
		n, err = d.uintN(1)
	case c == 0xda:
		n, err = d.uintN(2)
	case c == 0xdb:
		n, err = d.uintN(4)
	default:
		return nil, d.wrong(c, "string")
	}
	if err != nil {
		return nil, err
	}
	return d.take(n)
}

// str reads a str, or nil as "".
func (d *bdec) str() (string, error) {
	if d.isNil() {
		return "", nil
	}
	b, err := d.strTemp()
	return string(b), err
}

// bytes reads a bin or a str without copying it; isNil for nil.
func (d *bdec) bytes() (b []byte, isNil bool, err error) {
	if d.off < len(d.b) {
		switch c := d.b[d.off]; c {
		case 0xc0:
			d.off++
			return nil, true, nil
		case 0xc4, 0xc5, 0xc6:
			d.off++
			n, err := d.uintN(1 << (c - 0xc4)) // 1, 2 or 4 length bytes
			if err != nil {
				return nil, false, err
			}
			b, err = d.take(n)
			return b, false, err
		}
	}
	b, err = d.strTemp()
	return b, false, err
}

// container reads an array's or a map's header: its element count n, which
// must fit in the bytes left at per bytes an element (each value takes at
// least one), and enters it one level deeper, failing past MaxDepth as
// Check does. The caller leaves with d.depth--, unless isNil or err.
func (d *bdec) container(fix, fixMask, b16, b32 byte, per int, what string) (n int, isNil bool, err error) {
	c, err := d.next()
	if err != nil {
		return 0, false, err
	}
	var m uint64
	switch {
	case c&^fixMask == fix:
		m = uint64(c & fixMask)
	case c == b16:
		m, err = d.uintN(2)
	case c == b32:
		m, err = d.uintN(4)
	case c == 0xc0:
		return 0, true, nil
	default:
		return 0, false, d.wrong(c, what)
	}
	switch {
	case err != nil:
		return 0, false, err
	case m > uint64(len(d.b)-d.off)/uint64(per):
		return 0, false, fmt.Errorf("%s longer than message at offset %d", what, d.off)
	case m > 0 && d.depth >= MaxDepth:
		return 0, false, fmt.Errorf("nesting too deep at offset %d", d.off)
	}
	d.depth++
	return int(m), false, nil
}

func (d *bdec) arrayLen() (n int, isNil bool, err error) {
	return d.container(0x90, 0x0f, 0xdc, 0xdd, 1, "array")
}

func (d *bdec) mapLen() (n int, isNil bool, err error) {
	return d.container(0x80, 0x0f, 0xde, 0xdf, 2, "map")
}
