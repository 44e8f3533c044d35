package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzMCPHandle: whatever line an agent sends, the server answers with
// JSON lines only (or nothing, for notifications and responses) and never
// panics. Tool calls run against a policy that does not exist, so they end
// at once with a validation result instead of running a script.
func FuzzMCPHandle(f *testing.F) {
	for _, seed := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}`,
		`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`,
		`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"run_risor_script","arguments":{"script":"1","args":{"a":1},"timeout_seconds":1}}}`,
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		`[{"jsonrpc":"2.0","id":1,"method":"ping"}]`,
		`{"jsonrpc":"2.0","id":{"x":1},"method":"ping"}`,
		`{`, ` `, `null`, `"x"`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		var out, errb bytes.Buffer
		s := &mcpServer{opts: options{policy: "/nonexistent/rex-fuzz.cedar"}, stderr: &errb, out: &out, slots: make(chan struct{}, mcpMaxCalls)}
		s.handle(line)
		s.calls.Wait()
		sc := bufio.NewScanner(&out)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if !json.Valid(sc.Bytes()) {
				t.Fatalf("response is not JSON: %q", sc.Text())
			}
		}
	})
}
