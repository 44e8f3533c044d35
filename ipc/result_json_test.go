package ipc

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
)

// TestResultAppendJSON: AppendJSON writes exactly what json.Marshal writes,
// for results with every field present, absent, nil and empty, and strings
// with everything encoding/json escapes.
func TestResultAppendJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	pieces := []string{"", "a", "é", "<b>&", "\u2028\u2029", "\x00\x1f\x7f", "\xff\xfe", `"\`, "\n\t\r\b\f", "日本"}
	str := func() string {
		var s string
		for n := r.IntN(4); n > 0; n-- {
			s += pieces[r.IntN(len(pieces))]
		}
		return s
	}
	strs := func() []string {
		switch r.IntN(3) {
		case 0:
			return nil
		case 1:
			return []string{}
		}
		return []string{str(), str()}
	}
	outputs := []string{``, `"hello"`, `1`, ` { "a" : [1, 2.50, "<x>"] } `, `null`, `"\u2028 &"`, `[true,false]`}
	for i := 0; i < 3000; i++ {
		res := &Result{Status: str(), Output: json.RawMessage(outputs[r.IntN(len(outputs))]), Stdout: str(), RunID: str(),
			DurationMs: int64(r.Uint64())}
		if r.IntN(2) == 0 {
			res.Error = &ResultError{ErrorType: str(), Message: str(), Action: str(), Resource: str(), PolicyIDs: strs()}
		}
		switch r.IntN(3) {
		case 1:
			res.Denials = []Denial{}
		case 2:
			res.Denials = []Denial{{Action: str(), Resource: str(), PolicyIDs: strs()}, {Action: str()}}
		}
		switch r.IntN(3) {
		case 1:
			res.Logs, res.Metrics, res.Alarms = []LogLine{}, []Metric{}, []Alarm{}
		case 2:
			res.Logs = []LogLine{{Level: str(), Message: str(), Time: str()}}
			res.Metrics = []Metric{{Name: str(), Value: r.NormFloat64() * 1e9, Unit: str(), Dimensions: map[string]string{str(): str(), "k": str()}, Time: str()}}
			res.Alarms = []Alarm{{Type: str(), Details: json.RawMessage(outputs[r.IntN(len(outputs))]), Time: str()}}
		}
		want, werr := json.Marshal(res)
		got, gerr := res.AppendJSON([]byte("prefix"))
		if (werr != nil) != (gerr != nil) {
			t.Fatalf("%+v: json.Marshal error %v, AppendJSON error %v", res, werr, gerr)
		}
		if werr != nil {
			if string(got) != "prefix" {
				t.Fatalf("AppendJSON wrote %q despite its error", got)
			}
			continue
		}
		if !bytes.Equal(got, append([]byte("prefix"), want...)) {
			t.Fatalf("%+v:\nAppendJSON   %s\njson.Marshal %s", res, got, want)
		}
	}
	// An output that is not JSON fails as json.Marshal does.
	bad := &Result{Status: StatusSuccess, Output: json.RawMessage(`{"a":`)}
	if _, err := bad.AppendJSON(nil); err == nil {
		t.Error("AppendJSON accepted an invalid output")
	}
}
