package ipc

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"reflect"
	"sync"
)

// The decoder of Unmarshal. It reads the msgpack that Check has already
// walked, straight from the byte slice into the message struct, with one
// plan per Go type built once from the same `msgpack` tags the encoder
// uses: the message definitions stay the protocol's only description.
// vmihailenco/msgpack, the tests' reference, decodes the same bytes to the same
// values (FuzzDecode checks that on every input this decoder accepts); this
// one takes about half the time and is stricter:
//   - a struct is a map with string keys, never an array;
//   - an unknown key is an error;
//   - an integer outside its field's type (a negative size, an id above
//     2³²−1) is an error, never a silent wrap;
//   - a string field takes only str, a bool only true or false;
//   - msgpack nil gives the field's zero value.
//
// Check runs first, so every length read here is known to fit inside the
// input; containers still grow as they fill, and never reserve more than 64
// elements on a declared count.

type bdec struct {
	b     []byte
	off   int
	alias bool // []byte fields alias b instead of copying (UnmarshalNoCopy)
}

// decodeFunc decodes one value into v, which is settable.
type decodeFunc func(d *bdec, v reflect.Value) error

// plans holds complete plans only: a plan is published once every plan it
// calls is built, so a decoder never meets a half-built one, whichever
// goroutine uses a type first.
var (
	plans   sync.Map // reflect.Type → decodeFunc
	plansMu sync.Mutex
)

// decodeChecked decodes b, which Check accepted, into v, a pointer to a
// struct.
func decodeChecked(b []byte, v any, alias bool) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("%w: decode into %T", ErrMalformed, v)
	}
	d := bdec{b: b, alias: alias}
	if err := planOf(rv.Type().Elem())(&d, rv.Elem()); err != nil {
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
		return func(d *bdec, v reflect.Value) error { return (*p)(d, v) }
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
		return func(d *bdec, v reflect.Value) error {
			if d.isNil() {
				v.SetZero()
				return nil
			}
			p := reflect.New(t.Elem())
			if err := elem(d, p.Elem()); err != nil {
				return err
			}
			v.Set(p)
			return nil
		}
	case reflect.String:
		return func(d *bdec, v reflect.Value) error {
			s, err := d.str()
			if err == nil {
				v.SetString(s)
			}
			return err
		}
	case reflect.Bool:
		return func(d *bdec, v reflect.Value) error {
			switch c := d.next(); c {
			case 0xc0, 0xc2:
				v.SetBool(false)
			case 0xc3:
				v.SetBool(true)
			default:
				return d.wrong(c, "bool")
			}
			return nil
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		bits := t.Bits()
		return func(d *bdec, v reflect.Value) error {
			n, neg, err := d.integer()
			if err != nil {
				return err
			}
			lim := uint64(1) << (bits - 1)
			if (!neg && n >= lim) || (neg && n > lim) {
				return fmt.Errorf("integer out of range for %s at offset %d", t, d.off)
			}
			if neg {
				v.SetInt(-int64(n)) // for -2⁶³ the negation wraps to the right value
			} else {
				v.SetInt(int64(n))
			}
			return nil
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		bits := t.Bits()
		return func(d *bdec, v reflect.Value) error {
			n, neg, err := d.integer()
			if err != nil {
				return err
			}
			if neg || (bits < 64 && n >= uint64(1)<<bits) {
				return fmt.Errorf("integer out of range for %s at offset %d", t, d.off)
			}
			v.SetUint(n)
			return nil
		}
	case reflect.Float64:
		return func(d *bdec, v reflect.Value) error {
			f, err := d.float()
			if err == nil {
				v.SetFloat(f)
			}
			return err
		}
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return func(d *bdec, v reflect.Value) error {
				b, isNil, err := d.bytes()
				if err != nil {
					return err
				}
				if isNil {
					v.SetZero()
					return nil
				}
				if !d.alias {
					// Clone allocates without zeroing first: a 4 KiB
					// read costs one copy, not a clear and a copy.
					b = bytes.Clone(b)
				}
				v.SetBytes(b)
				return nil
			}
		}
		elem := b.plan(t.Elem())
		return func(d *bdec, v reflect.Value) error {
			n, isNil, err := d.arrayLen()
			if err != nil || isNil {
				v.SetZero()
				return err
			}
			s := reflect.MakeSlice(t, 0, min(n, 64))
			for i := 0; i < n; i++ {
				s = reflect.Append(s, reflect.Zero(t.Elem()))
				if err := elem(d, s.Index(i)); err != nil {
					return err
				}
			}
			v.Set(s)
			return nil
		}
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			break
		}
		elem := b.plan(t.Elem())
		return func(d *bdec, v reflect.Value) error {
			n, isNil, err := d.mapLen()
			if err != nil || isNil {
				v.SetZero()
				return err
			}
			m := reflect.MakeMapWithSize(t, min(n, 64))
			key := reflect.New(t.Key()).Elem()
			val := reflect.New(t.Elem()).Elem()
			for i := 0; i < n; i++ {
				k, err := d.str()
				if err != nil {
					return err
				}
				key.SetString(k)
				val.SetZero()
				if err := elem(d, val); err != nil {
					return err
				}
				m.SetMapIndex(key, val)
			}
			v.Set(m)
			return nil
		}
	}
	return func(d *bdec, v reflect.Value) error {
		return fmt.Errorf("no decoder for %s", t)
	}
}

type fieldPlan struct {
	name   string
	index  int
	decode decodeFunc
}

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
		fields = append(fields, fieldPlan{name: name, index: i, decode: b.plan(sf.Type)})
	}
	return func(d *bdec, v reflect.Value) error {
		n, isNil, err := d.mapLen()
		if err != nil {
			return err
		}
		if isNil {
			v.SetZero()
			return nil
		}
		// Keys are looked for from where the last one was found: the
		// encoder writes them in field order, so the first try hits.
		next := 0
		for i := 0; i < n; i++ {
			k, err := d.strTemp()
			if err != nil {
				return err
			}
			j := next
			for tries := 0; tries < len(fields) && fields[j].name != string(k); tries++ {
				if j++; j == len(fields) {
					j = 0
				}
			}
			if len(fields) == 0 || fields[j].name != string(k) {
				return fmt.Errorf("unknown field %q in %s", k, t.Name())
			}
			if err := fields[j].decode(d, v.Field(fields[j].index)); err != nil {
				return err
			}
			if next = j + 1; next == len(fields) {
				next = 0
			}
		}
		return nil
	}
}

// The primitives below trust that Check walked the input: every length
// fits. Each still fails cleanly on a type it does not take.

func (d *bdec) next() byte {
	c := d.b[d.off]
	d.off++
	return c
}

func (d *bdec) isNil() bool {
	if d.b[d.off] == 0xc0 {
		d.off++
		return true
	}
	return false
}

func (d *bdec) take(n int) []byte {
	p := d.b[d.off : d.off+n]
	d.off += n
	return p
}

func (d *bdec) uintN(n int) uint64 {
	p := d.take(n)
	switch n {
	case 1:
		return uint64(p[0])
	case 2:
		return uint64(binary.BigEndian.Uint16(p))
	case 4:
		return uint64(binary.BigEndian.Uint32(p))
	}
	return binary.BigEndian.Uint64(p)
}

func (d *bdec) wrong(c byte, want string) error {
	return fmt.Errorf("%s expected, found type byte %#x at offset %d", want, c, d.off-1)
}

// integer reads any msgpack integer as a magnitude and sign; nil is 0.
func (d *bdec) integer() (n uint64, neg bool, err error) {
	c := d.next()
	switch {
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
		return d.uintN(1), false, nil
	case 0xcd:
		return d.uintN(2), false, nil
	case 0xce:
		return d.uintN(4), false, nil
	case 0xcf:
		return d.uintN(8), false, nil
	case 0xd0:
		s = int64(int8(d.uintN(1)))
	case 0xd1:
		s = int64(int16(d.uintN(2)))
	case 0xd2:
		s = int64(int32(d.uintN(4)))
	case 0xd3:
		s = int64(d.uintN(8))
	default:
		return 0, false, d.wrong(c, "integer")
	}
	if s < 0 {
		return uint64(-s), true, nil // -MinInt64 wraps to its own magnitude
	}
	return uint64(s), false, nil
}

func (d *bdec) float() (float64, error) {
	switch c := d.b[d.off]; c {
	case 0xca:
		d.off++
		return float64(math.Float32frombits(uint32(d.uintN(4)))), nil
	case 0xcb:
		d.off++
		return math.Float64frombits(d.uintN(8)), nil
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
	c := d.next()
	switch {
	case c >= 0xa0 && c <= 0xbf:
		return d.take(int(c & 0x1f)), nil
	case c == 0xd9:
		return d.take(int(d.uintN(1))), nil
	case c == 0xda:
		return d.take(int(d.uintN(2))), nil
	case c == 0xdb:
		return d.take(int(d.uintN(4))), nil
	}
	return nil, d.wrong(c, "string")
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
	switch c := d.b[d.off]; c {
	case 0xc0:
		d.off++
		return nil, true, nil
	case 0xc4, 0xc5, 0xc6:
		d.off++
		n := 1 << (c - 0xc4) // 1, 2 or 4 length bytes
		return d.take(int(d.uintN(n))), false, nil
	}
	b, err = d.strTemp()
	return b, false, err
}

func (d *bdec) arrayLen() (n int, isNil bool, err error) {
	c := d.next()
	switch {
	case c >= 0x90 && c <= 0x9f:
		return int(c & 0x0f), false, nil
	case c == 0xdc:
		return int(d.uintN(2)), false, nil
	case c == 0xdd:
		return int(d.uintN(4)), false, nil
	case c == 0xc0:
		return 0, true, nil
	}
	return 0, false, d.wrong(c, "array")
}

func (d *bdec) mapLen() (n int, isNil bool, err error) {
	c := d.next()
	switch {
	case c >= 0x80 && c <= 0x8f:
		return int(c & 0x0f), false, nil
	case c == 0xde:
		return int(d.uintN(2)), false, nil
	case c == 0xdf:
		return int(d.uintN(4)), false, nil
	case c == 0xc0:
		return 0, true, nil
	}
	return 0, false, d.wrong(c, "map")
}
