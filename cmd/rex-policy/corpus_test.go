package main

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Each file of testdata/invalid is a broken policy whose first line says
// which problem validate must report, and where: "// want: LINE:COL: text".
func TestValidatorErrorCorpus(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid/*.cedar")
	if err != nil || len(files) < 10 {
		t.Fatalf("corpus: %d files, %v", len(files), err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".cedar"), func(t *testing.T) {
			f, err := os.Open(file)
			if err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(f)
			sc.Scan()
			f.Close()
			want, ok := strings.CutPrefix(sc.Text(), "// want: ")
			if !ok {
				t.Fatalf("first line %q is not a // want: comment", sc.Text())
			}
			var out, errb bytes.Buffer
			if code := run([]string{"validate", file}, &out, &errb); code != exitInvalid {
				t.Fatalf("validate = %d, want %d\n%s", code, exitInvalid, errb.String())
			}
			if out.Len() != 0 {
				t.Errorf("stdout on failure: %s", out.String())
			}
			if !strings.Contains(errb.String(), file+":"+want) {
				t.Errorf("validate said:\n%s\nwant a line containing %q", errb.String(), file+":"+want)
			}
		})
	}
}

func TestPolicyTestFiles(t *testing.T) {
	dir := filepath.Join("testdata", "tests")
	file := func(n string) string { return filepath.Join(dir, n) }
	tests := []struct {
		name      string
		args      []string
		code      int
		out, errs []string
	}{
		{"pass", []string{file("pass.json")}, exitOK,
			[]string{"PASS " + file("pass.json") + ": auth log is forbidden\n", "4 passed, 0 failed\n"}, nil},
		{"fail", []string{file("pass.json"), file("fail.json")}, exitFail, []string{
			"PASS " + file("fail.json") + ": ops reads syslog\n",
			"FAIL " + file("fail.json") + ": ops may delete logs\n     decision: got deny, want allow\n     policy ids: got [], want [\"ops-read-logs\"]\n",
			"FAIL " + file("fail.json") + ": wrong policy id\n     policy ids: got [\"ops-read-logs\"], want [\"something-else\"]\n",
			"5 passed, 2 failed\n"}, nil},
		{"unknown field", []string{file("unknown_field.json")}, exitInvalid, nil, []string{`invalid test file: json: unknown field "expected"`}},
		{"bad decision", []string{file("bad_decision.json")}, exitInvalid, nil, []string{`decision must be allow, deny or invalid, not "maybe"`}},
		{"policy does not load", []string{file("bad_policy.json")}, exitInvalid, nil, []string{"policies do not load", "policy.cedar:1:1: unrecognized action"}},
		{"missing file", []string{file("nope.json")}, exitInvalid, nil, []string{"nope.json: open"}},
		// The Rex-compatible policies, for every namespace (the end-to-end
		// test runs their file operations through the binaries).
		{"rex-compat", []string{"../../policies/rex-compat/tests.json"}, exitOK, []string{"25 passed, 0 failed\n"}, nil},
		// rex's own scenario corpus is in the same format and must pass.
		{"authz scenarios", globT(t, "../../authz/testdata/scenarios/*.json"), exitOK, []string{" passed, 0 failed\n"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(append([]string{"test"}, tt.args...), &out, &errb)
			if code != tt.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, out.String(), errb.String())
			}
			for _, w := range tt.out {
				if !strings.Contains(out.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, out.String())
				}
			}
			for _, w := range tt.errs {
				if !strings.Contains(errb.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, errb.String())
				}
			}
		})
	}
}

func globT(t *testing.T, pattern string) []string {
	t.Helper()
	m, err := filepath.Glob(pattern)
	if err != nil || len(m) == 0 {
		t.Fatalf("glob %s: %v", pattern, err)
	}
	return m
}
