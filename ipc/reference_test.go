package ipc

import (
	"bytes"
	"fmt"
	"math"
	"math/rand"
	"reflect"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// referenceUnmarshal decodes b with vmihailenco/msgpack, the library that
// encodes every message, as Unmarshal did before it had its own decoder:
// the reference that unmarshal must agree with.
func referenceUnmarshal(b []byte, v any) error {
	if err := Check(b, MaxDepth); err != nil {
		return err
	}
	r := bytes.NewReader(b)
	dec := msgpack.NewDecoder(r)
	dec.DisallowUnknownFields(true)
	dec.SetCustomStructTag("msgpack")
	if err := dec.Decode(v); err != nil {
		return err
	}
	if r.Len() > 0 {
		return fmt.Errorf("trailing bytes")
	}
	return nil
}

// agree fails t when Unmarshal accepted data but the reference decoder
// refuses it or decodes another value. Unmarshal may refuse more (struct
// as array, out-of-range integers, bin for a string).
func agree(t *testing.T, mk func() any, data []byte) {
	t.Helper()
	got := mk()
	if err := Unmarshal(data, got); err != nil {
		return
	}
	want := mk()
	if err := referenceUnmarshal(data, want); err != nil {
		t.Fatalf("%T: Unmarshal accepted % x, the reference refuses it: %v", got, data, err)
	}
	if !sameValue(reflect.ValueOf(got), reflect.ValueOf(want)) {
		t.Fatalf("%T from % x:\n got  %+v\n want %+v", got, data, got, want)
	}
}

// sameValue is reflect.DeepEqual for decoded messages, except that NaN
// equals NaN: both decoders keep a float's bits, and a NaN from the wire
// is still the same value.
func sameValue(a, b reflect.Value) bool {
	if a.Type() != b.Type() {
		return false
	}
	switch a.Kind() {
	case reflect.Float32, reflect.Float64:
		x, y := a.Float(), b.Float()
		return x == y || (math.IsNaN(x) && math.IsNaN(y))
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return sameValue(a.Elem(), b.Elem())
	case reflect.Struct:
		for i := 0; i < a.NumField(); i++ {
			if !sameValue(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	case reflect.Slice:
		if a.IsNil() != b.IsNil() || a.Len() != b.Len() {
			return false
		}
		for i := 0; i < a.Len(); i++ {
			if !sameValue(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Map:
		if a.IsNil() != b.IsNil() || a.Len() != b.Len() {
			return false
		}
		for _, k := range a.MapKeys() {
			bv := b.MapIndex(k)
			if !bv.IsValid() || !sameValue(a.MapIndex(k), bv) {
				return false
			}
		}
		return true
	}
	return a.Equal(b) // the comparable leaves: strings, bools, integers
}

// fill sets every field of v (a pointer) to a random value, or leaves it
// nil or empty, as a peer could send it.
func fill(r *rand.Rand, v reflect.Value, depth int) {
	switch v.Kind() {
	case reflect.Pointer:
		if r.Intn(3) == 0 || depth > 3 {
			return
		}
		v.Set(reflect.New(v.Type().Elem()))
		fill(r, v.Elem(), depth+1)
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			fill(r, v.Field(i), depth+1)
		}
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d\u00e9%s", r.Intn(1000), string(make([]byte, r.Intn(40)))))
	case reflect.Bool:
		v.SetBool(r.Intn(2) == 1)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		bits := v.Type().Bits()
		n := r.Int63() >> (64 - bits)
		if r.Intn(2) == 0 {
			n = -n - 1 // reaches the type's minimum
		}
		if r.Intn(3) == 0 {
			n %= 200
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n := r.Uint64() >> (64 - v.Type().Bits())
		if r.Intn(3) == 0 {
			n %= 300
		}
		v.SetUint(n)
	case reflect.Float64:
		v.SetFloat(r.NormFloat64() * 1e6)
	case reflect.Slice:
		if r.Intn(4) == 0 {
			return // nil
		}
		n := r.Intn(4)
		if v.Type().Elem().Kind() == reflect.Uint8 {
			n = r.Intn(300)
		}
		s := reflect.MakeSlice(v.Type(), n, n)
		for i := 0; i < n; i++ {
			fill(r, s.Index(i), depth+1)
		}
		if v.Type().Elem().Kind() == reflect.Uint8 {
			r.Read(s.Bytes())
		}
		v.Set(s)
	case reflect.Map:
		if r.Intn(4) == 0 {
			return
		}
		m := reflect.MakeMap(v.Type())
		for i := r.Intn(4); i > 0; i-- {
			val := reflect.New(v.Type().Elem()).Elem()
			fill(r, val, depth+1)
			m.SetMapIndex(reflect.ValueOf(fmt.Sprintf("k%d", r.Intn(100))).Convert(v.Type().Key()), val)
		}
		v.Set(m)
	}
}

// Every message type, filled at random, decodes to what was encoded and
// to what the reference decoder makes of the same bytes.
func TestDecodeMatchesReference(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for _, mk := range decoders {
		for i := 0; i < 300; i++ {
			v := mk()
			fill(r, reflect.ValueOf(v).Elem(), 0)
			b, err := Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			got := mk()
			if err := Unmarshal(b, got); err != nil {
				t.Fatalf("%T: %v", v, err)
			}
			want := mk()
			if err := referenceUnmarshal(b, want); err != nil {
				t.Fatalf("%T: reference: %v", v, err)
			}
			if !sameValue(reflect.ValueOf(got), reflect.ValueOf(want)) {
				t.Fatalf("%T:\n got  %+v\n want %+v", v, got, want)
			}
			agree(t, mk, b)
		}
	}
}

// referenceMarshal encodes v with vmihailenco/msgpack, as Marshal did
// before it had its own encoder (map keys sorted, as that encoder sorts
// them).
func referenceMarshal(v any) []byte {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.SetCustomStructTag("msgpack")
	enc.SetSortMapKeys(true)
	if err := enc.Encode(v); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// Every message type has an encoding plan, and encodes, filled at random,
// to exactly the bytes vmihailenco/msgpack makes of it.
func TestEncodeMatchesReference(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	for _, mk := range decoders {
		if encPlanOf(reflect.TypeOf(mk())) == nil {
			t.Errorf("%T has no encoding plan", mk())
			continue
		}
		for i := 0; i < 300; i++ {
			v := mk()
			fill(r, reflect.ValueOf(v).Elem(), 0)
			// Maps of several keys: vmihailenco writes them in Go's
			// random order, so the reference decodes the bytes instead.
			b, err := Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			back := mk()
			if err := referenceUnmarshal(b, back); err != nil || !sameValue(reflect.ValueOf(back), reflect.ValueOf(v)) {
				t.Fatalf("%T: the reference decodes % x to %+v (%v), want %+v", v, b, back, err, v)
			}
			oneKeyMaps(reflect.ValueOf(v))
			got, err := AppendMarshal([]byte{0xee}, v)
			if err != nil {
				t.Fatal(err)
			}
			if want := referenceMarshal(v); !bytes.Equal(got[1:], want) || got[0] != 0xee {
				t.Fatalf("%T %+v:\n got  % x\n want % x", v, v, got, want)
			}
		}
	}
	// The edges of every integer form, and of every length form.
	type edges struct {
		I   []int
		I64 int64
		U   []uint
		S   []string
		B   []byte
		L   []bool
		M   map[string]int8
	}
	ints := []int{0, 1, 127, 128, 255, 256, 65535, 65536, 1<<32 - 1, 1 << 32, math.MaxInt64,
		-1, -32, -33, -128, -129, -32768, -32769, math.MinInt32, math.MinInt32 - 1, math.MinInt64}
	var uints []uint
	for _, n := range ints[:10] {
		uints = append(uints, uint(n))
	}
	for _, n := range []int{0, 15, 16, 31, 32, 255, 256, 65535, 65536} {
		v := edges{I: ints, I64: int64(n), U: append(uints, math.MaxUint64), S: []string{string(make([]byte, n))},
			B: make([]byte, n), L: make([]bool, n), M: map[string]int8{}}
		if n > 0 {
			v.M["k"] = int8(n)
		}
		got, err := Marshal(&v)
		if err != nil {
			t.Fatal(err)
		}
		if want := referenceMarshal(&v); !bytes.Equal(got, want) {
			t.Fatalf("length %d:\n got  % x\n want % x", n, got, want)
		}
	}
}

// Map keys go in sorted order, so a message's bytes depend on its value
// only.
func TestEncodeSortsMapKeys(t *testing.T) {
	got, err := Marshal(map[string]int{"b": 1, "a": 2, "c": 3})
	want := []byte{0x83, 0xa1, 'a', 2, 0xa1, 'b', 1, 0xa1, 'c', 3}
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("% x, %v; want % x", got, err, want)
	}
}

// A type without a plan (an interface field) still encodes, through
// vmihailenco/msgpack.
func TestEncodeFallsBack(t *testing.T) {
	type any1 struct{ V any }
	v := &any1{V: "x"}
	if encPlanOf(reflect.TypeOf(v)) != nil {
		t.Fatal("a plan for an interface field")
	}
	got, err := Marshal(v)
	if err != nil || !bytes.Equal(got, referenceMarshal(v)) {
		t.Fatalf("% x, %v", got, err)
	}
}

// oneKeyMaps keeps one key (the least) of every map in v.
func oneKeyMaps(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			oneKeyMaps(v.Elem())
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			oneKeyMaps(v.Field(i))
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			oneKeyMaps(v.Index(i))
		}
	case reflect.Map:
		keys := v.MapKeys()
		for i, k := range keys {
			if i > 0 {
				v.SetMapIndex(k, reflect.Value{})
				continue
			}
			e := reflect.New(v.Type().Elem()).Elem()
			e.Set(v.MapIndex(k))
			oneKeyMaps(e)
			v.SetMapIndex(k, e)
		}
	}
}
