package broker

import (
	"encoding/json"
	"io"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/rex-sh/rex/authz"
)

// appendJSON writes what json.Marshal writes, on records with every field
// (of AuditRecord and AuditLimits, found by reflection, so that a field
// added later is covered) set or left zero at random.
func TestAuditRecordJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	strs := []string{"", "decision", "file_system::Dir::\"/tmp\"", "<&>", "line\nbreak", "\xff", "日本", "\u2028", `"\`}
	var fill func(v reflect.Value)
	fill = func(v reflect.Value) {
		if rng.IntN(3) == 0 {
			return // zero: omitempty leaves it out
		}
		switch v.Kind() {
		case reflect.String:
			v.SetString(strs[rng.IntN(len(strs))])
		case reflect.Int, reflect.Int64:
			v.SetInt(rng.Int64N(1<<40) - 1<<39)
		case reflect.Uint32:
			v.SetUint(uint64(rng.Uint32()))
		case reflect.Slice:
			n := rng.IntN(4) // 0: empty, not nil
			s := reflect.MakeSlice(v.Type(), n, n)
			for i := range n {
				s.Index(i).SetString(strs[rng.IntN(len(strs))])
			}
			v.Set(s)
		case reflect.Pointer:
			v.Set(reflect.New(v.Type().Elem()))
			fill(v.Elem())
		case reflect.Struct:
			for i := range v.NumField() {
				fill(v.Field(i))
			}
		default:
			t.Fatalf("AuditRecord has a field of kind %v that this test cannot fill (nor appendJSON write?)", v.Kind())
		}
	}
	for range 5000 {
		var rec AuditRecord
		v := reflect.ValueOf(&rec).Elem()
		for i := range v.NumField() {
			fill(v.Field(i))
		}
		want, err := json.Marshal(&rec)
		if err != nil {
			t.Fatal(err)
		}
		if got := rec.appendJSON(nil); string(got) != string(want) {
			t.Fatalf("appendJSON\n got %s\nwant %s", got, want)
		}
	}
}

// BenchmarkAuditDecision is one decision's audit line, built and written
// (to nowhere) on its own: a daemon pays it on every request.
func BenchmarkAuditDecision(b *testing.B) {
	a := newAuditLog(io.Discard)
	r := &run{id: "ba107b8f3368928b", principal: authz.Principal{Name: "root"}}
	act, res := authz.FileAction("stat"), authz.DirResource("/var/log", nil)
	d := authz.Decision{Allow: true, PolicyIDs: []string{"/etc/rex/policies/base.cedar:1"}}
	var line []byte
	b.ReportAllocs()
	for b.Loop() {
		line = a.appendDecision(line[:0], r, act, res, d)
		a.writeLines(line)
	}
}
