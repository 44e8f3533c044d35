package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// serve runs the MCP server over the given input lines, without running
// any script, and returns its responses.
func serve(t *testing.T, input string) []map[string]any {
	t.Helper()
	var out, errb bytes.Buffer
	o := options{policy: "/nonexistent.cedar"}
	if code := serveMCP(&o, strings.NewReader(input), &out, &errb); code != 0 {
		t.Fatalf("serveMCP = %d: %s", code, errb.String())
	}
	var resps []map[string]any
	sc := bufio.NewScanner(&out)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("response is not JSON: %q", sc.Text())
		}
		resps = append(resps, m)
	}
	return resps
}

func TestMCPProtocolErrors(t *testing.T) {
	huge := `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":"` + strings.Repeat("a", mcpMaxLine) + `"}}`
	lines := []string{
		huge,
		`{"jsonrpc":"2.0","id":2,"method":"ping"}`,
		`   `,
		`42`,
		`{"jsonrpc":"2.0","id":null,"method":"ping"}`,
		`{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}`,
		`{"jsonrpc":"2.0","id":3}`,
		`{"jsonrpc":"2.0","id":4,"result":{}}`,
		`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}`,
		`{"jsonrpc":"2.0","id":"s","method":"initialize","params":{}}`,
		`{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"run_risor_script","arguments":{"script":"1","bogus":1}}}`,
		`{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"run_risor_script","arguments":{"script":"1","args":[1]}}}`,
		`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"run_risor_script","arguments":{"script":"1","timeout_seconds":-1}}}`,
		`{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"run_risor_script","arguments":{"script":"1","timeout_seconds":1e12}}}`,
		`{"jsonrpc":"2.0","id":9,"method":"tools/call","params":"x"}`,
		`{"jsonrpc":"2.0","id":10,"method":"ping"}`,
	}
	want := []struct {
		id   any
		code float64 // 0: a result
	}{
		{nil, rpcInvalidRequest},
		{float64(2), 0},
		{nil, rpcInvalidRequest},
		{nil, rpcInvalidRequest},
		{nil, rpcInvalidRequest},
		{float64(3), rpcInvalidRequest},
		{"s", rpcInvalidParams},
		{float64(5), rpcInvalidParams},
		{float64(6), rpcInvalidParams},
		{float64(7), rpcInvalidParams},
		{float64(8), rpcInvalidParams},
		{float64(9), rpcInvalidParams},
		{float64(10), 0},
	}
	got := serve(t, strings.Join(lines, "\n")) // the last line has no newline
	if len(got) != len(want) {
		t.Fatalf("%d responses, want %d: %v", len(got), len(want), got)
	}
	for i, w := range want {
		var code float64
		if e, ok := got[i]["error"].(map[string]any); ok {
			code = e["code"].(float64)
		}
		if got[i]["id"] != w.id || code != w.code {
			t.Errorf("response %d = %v, want id %v code %v", i, got[i], w.id, w.code)
		}
	}
}

func TestMCPVersionNegotiation(t *testing.T) {
	var in strings.Builder
	versions := append(append([]string(nil), mcpVersions...), "2099-01-01", "garbage")
	for _, v := range versions {
		b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": map[string]any{"protocolVersion": v}})
		in.Write(append(b, '\n'))
	}
	got := serve(t, in.String())
	latest := mcpVersions[len(mcpVersions)-1]
	for i, v := range versions {
		want := v
		if i >= len(mcpVersions) {
			want = latest
		}
		if pv := got[i]["result"].(map[string]any)["protocolVersion"]; pv != want {
			t.Errorf("client %q: server answered %v, want %s", v, pv, want)
		}
	}
}
