package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.cedar")
	bad := filepath.Join(dir, "bad.cedar")
	write(t, good, ("@id(\"a\")\npermit(principal, action == file_system::Action::\"read\", resource);\npermit(principal, action, resource);\n"))
	write(t, bad, ("permit(principal, action, resource);\n\npermit(principal, action == file_system::Action::\"fly\", resource);\n"))
	demo := filepath.Join("..", "..", "policies", "examples")

	tests := []struct {
		args     []string
		code     int
		out, err string
	}{
		{[]string{"validate", good}, 0, "ok: 2 policies\n", good + ":3:1: warning: policy has no @id"},
		{[]string{"validate", demo}, 0, "ok: 3 policies\n", ""},
		{[]string{"validate", bad}, 2, "", bad + ":3:1: "},
		{[]string{"validate", filepath.Join(dir, "missing")}, 2, "", "missing: "},
		{[]string{"validate"}, 2, "", "usage:"},
		{[]string{"schema"}, 0, "namespace file_system", ""},
		{[]string{"schema", "x"}, 2, "", "usage:"},
		{[]string{"test"}, 2, "", "usage:"},
		{[]string{"test", good}, 2, "", "invalid test file"},
		{[]string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{nil, 2, "", "usage:"},
		{[]string{"--help"}, 0, "usage:", ""},
	}
	for _, tt := range tests {
		var out, errb bytes.Buffer
		code := run(tt.args, &out, &errb)
		if code != tt.code || !strings.Contains(out.String(), tt.out) || !strings.Contains(errb.String(), tt.err) {
			t.Errorf("run(%q) = %d\nstdout: %s\nstderr: %s\nwant %d, stdout containing %q, stderr containing %q",
				tt.args, code, out.String(), errb.String(), tt.code, tt.out, tt.err)
		}
		if tt.code != 0 && tt.out == "" && out.Len() != 0 {
			t.Errorf("run(%q) printed to stdout on failure: %s", tt.args, out.String())
		}
	}
}

func write(t *testing.T, name, data string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}
