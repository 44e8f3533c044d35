package ipc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"unsafe"
)

func TestRoundTrip(t *testing.T) {
	in := &Request{ID: 7, Op: OpRead, Body: mustMarshal(t, &ReadReq{Path: "/etc/hosts"})}
	b := mustMarshal(t, in)
	var out Request
	if err := Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	var rr ReadReq
	if err := Unmarshal(out.Body, &rr); err != nil {
		t.Fatal(err)
	}
	if out.ID != 7 || out.Op != OpRead || rr.Path != "/etc/hosts" {
		t.Fatalf("got %+v %+v", out, rr)
	}
}

func mustMarshal(t testing.TB, v any) []byte {
	t.Helper()
	b, err := Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// P02, P03, P04: bombs, deep nesting and junk are refused by Check before
// the msgpack decoder sees them.
func TestCheckRejects(t *testing.T) {
	deep := bytes.Repeat([]byte{0x91}, 100000)
	deep = append(deep, 0xc0)
	cases := map[string][]byte{
		"array32 bomb":      {0xdd, 0xff, 0xff, 0xff, 0xff},
		"map32 bomb":        {0xdf, 0xff, 0xff, 0xff, 0xff},
		"str32 bomb":        {0xdb, 0xff, 0xff, 0xff, 0xff},
		"bin32 bomb":        {0xc6, 0xff, 0xff, 0xff, 0xff},
		"array16 bomb":      {0xdc, 0xff, 0xff},
		"nested arrays":     deep,
		"nested maps":       append(bytes.Repeat([]byte{0x81, 0xa1, 'k'}, 1000), 0xc0),
		"reserved c1":       {0xc1},
		"ext type":          {0xd4, 0x01, 0x00},
		"trailing bytes":    {0xc0, 0xc0},
		"empty":             {},
		"truncated str":     {0xa5, 'a', 'b'},
		"truncated uint":    {0xcf, 0x01},
		"duplicate key":     {0x82, 0xa1, 'a', 0x01, 0xa1, 'a', 0x02},
		"map missing value": {0x81, 0xa1, 'a'},
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			err := Check(b, MaxDepth)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Check(%x...) = %v, want ErrMalformed", b[:min(len(b), 8)], err)
			}
			var r Request
			if err := Unmarshal(b, &r); err == nil {
				t.Fatal("Unmarshal accepted it")
			}
		})
	}
}

// A bomb must not allocate in proportion to its declared length.
func TestCheckDoesNotAllocateForDeclaredLength(t *testing.T) {
	b := []byte{0xdd, 0xff, 0xff, 0xff, 0xf0}
	allocs := testing.AllocsPerRun(100, func() { _ = Check(b, MaxDepth) })
	if allocs > 4 {
		t.Fatalf("Check allocated %v times for a bomb", allocs)
	}
}

func TestUnmarshalRejectsUnknownAndWrongTypes(t *testing.T) {
	type extra struct {
		ID    uint32 `msgpack:"id"`
		Sneak string `msgpack:"principal"`
	}
	var r Request
	if err := Unmarshal(mustMarshal(t, &extra{ID: 1, Sneak: "root"}), &r); err == nil {
		t.Fatal("unknown field accepted")
	}
	type wrong struct {
		ID string `msgpack:"id"`
	}
	if err := Unmarshal(mustMarshal(t, &wrong{ID: "x"}), &r); err == nil {
		t.Fatal("string accepted for an integer field")
	}
}

// P01: impossible frame lengths are refused before the body is allocated.
func TestReadFrameLengths(t *testing.T) {
	for _, n := range []uint32{0, MaxFrame + 1, 0xffffffff} {
		var hdr [4]byte
		binary.BigEndian.PutUint32(hdr[:], n)
		_, _, err := ReadFrame(bytes.NewReader(hdr[:]), MaxFrame)
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("length %d: err = %v, want ErrMalformed", n, err)
		}
	}
	// Truncated body: an error, never a short message.
	var buf bytes.Buffer
	if err := WriteFrame(&buf, MsgHello, &Hello{Version: 1, Client: "x"}); err != nil {
		t.Fatal(err)
	}
	short := buf.Bytes()[:buf.Len()-2]
	if _, _, err := ReadFrame(bytes.NewReader(short), MaxFrame); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated frame: %v", err)
	}
}

func TestFrameRoundTripAndErrorFrame(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteFrame(&buf, MsgError, &ErrorMsg{Code: CodeBusy, Message: "full"}); err != nil {
		t.Fatal(err)
	}
	var ack HelloAck
	err := ReadFrameAs(&buf, MsgHelloAck, &ack)
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeBusy || e.Message != "full" {
		t.Fatalf("got %v", err)
	}
	buf.Reset()
	_ = WriteFrame(&buf, MsgHello, &Hello{Version: 1})
	if err := ReadFrameAs(&buf, MsgRun, &RunRequest{}); err == nil || !strings.Contains(err.Error(), "message type") {
		t.Fatalf("wrong type accepted: %v", err)
	}
}

func TestExitCodes(t *testing.T) {
	cases := map[string]int{
		"": 0, ErrAccessDenied: 3, ErrScript: 4, ErrTimeout: 5, ErrResourceLimit: 5,
		ErrValidation: 2, ErrCommunication: 1, ErrInternal: 1,
	}
	for typ, want := range cases {
		r := &Result{Status: StatusSuccess}
		if typ != "" {
			r = &Result{Status: StatusError, Error: &ResultError{ErrorType: typ}}
		}
		if got := ExitCode(r); got != want {
			t.Errorf("%q: exit %d, want %d", typ, got, want)
		}
	}
}

func TestCodeOf(t *testing.T) {
	if CodeOf(nil) != CodeOK || CodeOf(errors.New("x")) != CodeInternal {
		t.Fatal("CodeOf basics")
	}
	wrapped := errors.Join(errors.New("ctx"), &Error{Code: CodeDenied, Message: "no"})
	if CodeOf(wrapped) != CodeDenied {
		t.Fatal("CodeOf does not see through wrapping")
	}
	if !errors.Is(wrapped, &Error{Code: CodeDenied}) {
		t.Fatal("errors.Is by code")
	}
}

// The request envelope refuses wrapped integers and struct-as-array.
func TestRequestEnvelopeStrict(t *testing.T) {
	type loose struct {
		ID   int64  `msgpack:"id"`
		Op   int64  `msgpack:"op"`
		Body []byte `msgpack:"body"`
	}
	for _, bad := range []loose{{ID: -1, Op: 1}, {ID: 1 << 33, Op: 1}, {ID: 1, Op: 1 << 40}, {ID: 1, Op: -2}} {
		var r Request
		if err := Unmarshal(mustMarshal(t, &bad), &r); err == nil {
			t.Errorf("accepted %+v as %+v", bad, r)
		}
	}
	var r Request
	if err := Unmarshal([]byte{0x93, 0x01, 0x01, 0xc4, 0x00}, &r); err == nil {
		t.Error("accepted an array as the request envelope")
	}
	good := mustMarshal(t, &Request{ID: 42, Op: OpStat, Body: []byte{0x80}})
	if err := Unmarshal(good, &r); err != nil || r.ID != 42 || r.Op != OpStat || len(r.Body) != 1 {
		t.Fatalf("good request: %v %+v", err, r)
	}
}

// Every message is as strict as the request envelope: an integer outside
// its field's type is an error, never a wrap, and a struct is a map.
func TestUnmarshalIntegersInRange(t *testing.T) {
	type loose struct {
		Mode  int64 `msgpack:"mode"`
		Size  any   `msgpack:"size"`
		Nlink int64 `msgpack:"nlink"`
	}
	for _, bad := range []loose{{Mode: -1}, {Mode: 1 << 32}, {Size: uint64(1 << 63)}, {Nlink: -5}, {Size: 1.5}} {
		var fi FileInfo
		if err := Unmarshal(mustMarshal(t, &bad), &fi); err == nil {
			t.Errorf("accepted %+v as %+v", bad, fi)
		}
	}
	for _, good := range []loose{{Mode: 1<<32 - 1, Size: int64(-1 << 63), Nlink: 1<<63 - 1}, {Size: int64(-7)}} {
		var fi FileInfo
		if err := Unmarshal(mustMarshal(t, &good), &fi); err != nil ||
			int64(fi.Mode) != good.Mode || fi.Size != good.Size.(int64) || int64(fi.Nlink) != good.Nlink {
			t.Errorf("%+v decoded as %+v, %v", good, fi, err)
		}
	}
	var fi FileInfo
	if err := Unmarshal([]byte{0x92, 0xa1, 'a', 0xa1, 'b'}, &fi); err == nil {
		t.Error("accepted an array as a struct")
	}
}

// TestCheckDuplicateKeysLongMaps: duplicates are found among the first keys
// (compared in place), past them (in a map), and across the two.
func TestCheckDuplicateKeysLongMaps(t *testing.T) {
	encode := func(keys ...string) []byte {
		b := []byte{0xde, 0, byte(len(keys))} // map16
		for _, k := range keys {
			b = append(b, 0xa0|byte(len(k)))
			b = append(b, k...)
			b = append(b, 0x01)
		}
		return b
	}
	var keys []string
	for i := range 40 {
		keys = append(keys, fmt.Sprintf("k%02d", i))
	}
	if err := Check(encode(keys...), MaxDepth); err != nil {
		t.Fatalf("40 distinct keys: %v", err)
	}
	for _, tc := range []struct{ at, of int }{{3, 1}, {15, 0}, {16, 2}, {17, 16}, {39, 38}, {39, 5}} {
		k := slices.Clone(keys)
		k[tc.at] = k[tc.of]
		if err := Check(encode(k...), MaxDepth); err == nil || !strings.Contains(err.Error(), "duplicate key") {
			t.Errorf("key %d repeating key %d: err = %v, want a duplicate key error", tc.at, tc.of, err)
		}
	}
}

// A key for a struct without fields is an unknown field, not a crash.
func TestUnmarshalFieldlessStruct(t *testing.T) {
	var v struct{}
	if err := Unmarshal([]byte{0x81, 0xa1, 'a', 0x01}, &v); err == nil {
		t.Error("accepted a field of a struct that has none")
	}
	if err := Unmarshal([]byte{0x80}, &v); err != nil {
		t.Error(err)
	}
}

// AppendMarshal is Marshal appended to what dst holds; UnmarshalNoCopy
// decodes the same values as Unmarshal, its []byte fields inside the input.
func TestAppendMarshalAndNoCopy(t *testing.T) {
	r := &Response{ID: 9, Code: CodeOK, Body: []byte("body bytes")}
	want := mustMarshal(t, r)
	got, err := AppendMarshal([]byte("prefix"), r)
	if err != nil || string(got) != "prefix"+string(want) {
		t.Fatalf("AppendMarshal = %q, %v; want prefix + %q", got, err, want)
	}
	var a, b Response
	if err := Unmarshal(want, &a); err != nil {
		t.Fatal(err)
	}
	if err := UnmarshalNoCopy(want, &b); err != nil || !reflect.DeepEqual(a, b) {
		t.Fatalf("UnmarshalNoCopy = %+v, %v; Unmarshal %+v", b, err, a)
	}
	inside := func(s []byte) bool {
		p, lo := uintptr(unsafe.Pointer(unsafe.SliceData(s))), uintptr(unsafe.Pointer(unsafe.SliceData(want)))
		return len(s) > 0 && p >= lo && p+uintptr(len(s)) <= lo+uintptr(len(want))
	}
	if !inside(b.Body) || inside(a.Body) {
		t.Errorf("aliasing: NoCopy body inside input %v, copied body inside input %v", inside(b.Body), inside(a.Body))
	}
}

// The first decodes of a type may come from many goroutines at once (a
// storm of runs reaching a fresh broker): none may meet a plan still being
// built. A recursive type decodes too.
func TestDecodePlansConcurrentFirstUse(t *testing.T) {
	type node struct {
		Name string   `msgpack:"name"`
		Next *node    `msgpack:"next"`
		Kids []node   `msgpack:"kids"`
		Tags []string `msgpack:"tags"`
	}
	type a struct {
		X int64  `msgpack:"x"`
		N []node `msgpack:"n"`
	}
	type b struct {
		Y map[string]a `msgpack:"y"`
	}
	in := b{Y: map[string]a{"k": {X: -3, N: []node{{Name: "r", Next: &node{Name: "s"}, Kids: []node{{Name: "t"}}}}}}}
	var out b
	if err := Unmarshal(mustMarshal(t, &in), &out); err != nil || !reflect.DeepEqual(out, in) {
		t.Fatalf("recursive type: %+v, %v", out, err)
	}
	// Types no decode has seen yet, each decoded first by many goroutines
	// released together.
	for i := range 50 {
		name := fmt.Sprintf("F%d", i)
		typ := reflect.StructOf([]reflect.StructField{
			{Name: name, Type: reflect.TypeOf([]in2{}), Tag: reflect.StructTag(fmt.Sprintf(`msgpack:"f%d"`, i))},
		})
		data := mustMarshal(t, map[string]any{fmt.Sprintf("f%d", i): []map[string]any{{"v": i}}})
		start := make(chan struct{})
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				v := reflect.New(typ)
				if err := Unmarshal(data, v.Interface()); err != nil {
					errs <- err
					return
				}
				if got := v.Elem().Field(0).Interface().([]in2); len(got) != 1 || got[0].V != i {
					errs <- fmt.Errorf("decoded %+v", got)
				}
			}()
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
}

type in2 struct {
	V int `msgpack:"v"`
}
