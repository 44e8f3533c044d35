package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzParseArgsFile fuzzes --args-file decoding (plain JSON objects and
// Rex's tagged values). The file comes from the caller, whom rex-exec
// serves, but its bytes end up in the broker's Start frame: parsing must
// never panic, must be deterministic, and every value it yields must be
// valid JSON (the broker and the worker decode them again). Seeds live in
// testdata/fuzz/FuzzParseArgsFile and run under plain `go test`.
func FuzzParseArgsFile(f *testing.F) {
	for _, s := range []string{
		`{}`,
		`{"a": 1, "b": "x", "c": [1, 2], "d": {"e": null}}`,
		`{"n": {"longValue": 5}, "s": {"stringValue": "x"}}`,
		`{"l": {"listValue": [{"intValue": 1}, {"boolValue": true}]}}`,
		`{"m": {"mapValue": {"k": {"doubleValue": 1.5}}}}`,
		`{"mixed": {"stringValue": "x"}, "plain": 1}`,
		`{"bad": {"listValue": [{"nope": 1}]}}`,
		`{"dup": 1, "dup": 2}`,
		`[1, 2]`,
		`{"a": 1} trailing`,
		`{"big": 1e999999}`,
		`{"l": {"listValue": ` + strings.Repeat(`[`, 100) + strings.Repeat(`]`, 100) + `}}`,
		"{\"nul\": \"a\\u0000b\"}",
		"\xff\xfe{}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 1<<20 {
			return
		}
		a := map[string]json.RawMessage{}
		errA := parseArgsFile(b, a)
		bm := map[string]json.RawMessage{}
		errB := parseArgsFile(b, bm)
		if (errA == nil) != (errB == nil) {
			t.Fatalf("not deterministic: %v vs %v", errA, errB)
		}
		if errA != nil {
			return
		}
		for k, v := range a {
			if !json.Valid(v) {
				t.Fatalf("value of %q is not JSON: %q", k, v)
			}
			if string(bm[k]) != string(v) {
				t.Fatalf("value of %q differs between parses: %q vs %q", k, v, bm[k])
			}
		}
		if _, err := json.Marshal(a); err != nil {
			t.Fatalf("args do not re-encode: %v", err)
		}
	})
}

// TestParseArgsFileTagged pins the two shapes: a file where every value is
// a Rex tag is untagged; one plain value makes the whole file plain.
func TestParseArgsFileTagged(t *testing.T) {
	for _, c := range []struct{ in, key, want string }{
		{`{"n": {"longValue": 5}, "l": {"listValue": [{"stringValue": "a"}]}}`, "l", `["a"]`},
		{`{"n": {"longValue": 5}, "l": {"listValue": [{"stringValue": "a"}]}}`, "n", `5`},
		{`{"n": {"longValue": 5}, "p": 1}`, "n", `{"longValue": 5}`},
	} {
		got := map[string]json.RawMessage{}
		if err := parseArgsFile([]byte(c.in), got); err != nil {
			t.Fatalf("%s: %v", c.in, err)
		}
		if string(got[c.key]) != c.want {
			t.Errorf("%s: %s = %s, want %s", c.in, c.key, got[c.key], c.want)
		}
	}
	if err := parseArgsFile([]byte(`[1]`), map[string]json.RawMessage{}); err == nil {
		t.Error("a JSON array was accepted as args")
	}
}
