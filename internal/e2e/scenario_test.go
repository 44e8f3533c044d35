package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// Script scenarios (CONVENTIONS §9): testdata/scenarios/*.risor, each a
// script whose leading comment lines state what must happen:
//
//	// policy: NAME          testdata/policies/NAME.cedar (required)
//	// status: SUCCESS|ERROR (required)
//	// error_type: TYPE      when status is ERROR
//	// exit: N               rex-exec's exit code (default: from status/error_type)
//	// output: JSON          the script's final value, compared as JSON
//	// stdout: TEXT          exact stdout ("\n" escapes allowed)
//	// denials: N            number of denials in the result
//	// message_contains: T   the error message contains T
//	// args: NAME=VALUE      passed with --arg (repeatable)
//	// timeout: DURATION     passed with --timeout
//
// In scripts and policies, {{root}} is the fixture tree of scenarioTree;
// each scenario gets a fresh one, so scenarios may change it.
type scenarioSpec struct {
	policy, status, errType, stdout, contains, timeout string
	output                                             json.RawMessage
	exit, denials                                      int
	hasStdout                                          bool
	args                                               []string
}

// scenarioTree builds the fixture every scenario starts from.
//
//	{{root}}/data/hello.txt      "hello world\n"
//	{{root}}/data/lines.txt      "alpha\nbeta\ngamma\n"
//	{{root}}/data/secret         "TOPSECRET\n" (0600)
//	{{root}}/data/sub/a.txt      "a\n"
//	{{root}}/data/.hidden        "h\n"
//	{{root}}/data/link           symlink → hello.txt
//	{{root}}/data/escape         symlink → {{root}}/outside/secret
//	{{root}}/out/                empty, for writes
//	{{root}}/outside/secret      "OUTSIDE\n"
func scenarioTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{
		"data/hello.txt": "hello world\n", "data/lines.txt": "alpha\nbeta\ngamma\n",
		"data/secret": "TOPSECRET\n", "data/sub/a.txt": "a\n", "data/.hidden": "h\n",
		"outside/secret": "OUTSIDE\n",
	}
	for name, content := range files {
		p := filepath.Join(root, name)
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, []byte(content), 0o644))
	}
	must(t, os.Chmod(filepath.Join(root, "data/secret"), 0o600))
	must(t, os.MkdirAll(filepath.Join(root, "out"), 0o755))
	must(t, os.Symlink("hello.txt", filepath.Join(root, "data/link")))
	must(t, os.Symlink(filepath.Join(root, "outside/secret"), filepath.Join(root, "data/escape")))
	return root
}

func parseScenario(t *testing.T, src string) scenarioSpec {
	t.Helper()
	sp := scenarioSpec{exit: -1, denials: -1}
	sc := bufio.NewScanner(strings.NewReader(src))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "//") {
			break
		}
		k, v, ok := strings.Cut(strings.TrimSpace(strings.TrimPrefix(line, "//")), ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch strings.TrimSpace(k) {
		case "policy":
			sp.policy = v
		case "status":
			sp.status = v
		case "error_type":
			sp.errType = v
		case "exit":
			sp.exit, _ = strconv.Atoi(v)
		case "output":
			sp.output = json.RawMessage(v)
		case "stdout":
			sp.stdout, sp.hasStdout = strings.ReplaceAll(v, `\n`, "\n"), true
		case "denials":
			sp.denials, _ = strconv.Atoi(v)
		case "message_contains":
			sp.contains = v
		case "args":
			sp.args = append(sp.args, v)
		case "timeout":
			sp.timeout = v
		}
	}
	if sp.policy == "" || (sp.status != "SUCCESS" && sp.status != "ERROR") {
		t.Fatalf("scenario needs '// policy:' and '// status: SUCCESS|ERROR' header lines")
	}
	if sp.exit < 0 {
		sp.exit = exitFor(sp.status, sp.errType)
	}
	return sp
}

// exitFor mirrors DESIGN §2's exit codes for the header default.
func exitFor(status, errType string) int {
	if status == "SUCCESS" {
		return 0
	}
	switch errType {
	case "ACCESS_DENIED_EXCEPTION":
		return 3
	case "SCRIPT_EXCEPTION":
		return 4
	case "TIMEOUT_EXCEPTION", "RESOURCE_LIMIT_EXCEPTION":
		return 5
	case "VALIDATION_EXCEPTION":
		return 2
	}
	return 1
}

func TestScriptScenarios(t *testing.T) {
	requireSandbox(t)
	files, err := filepath.Glob("testdata/scenarios/*.risor")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios: %v", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".risor")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			raw, err := os.ReadFile(file)
			must(t, err)
			sp := parseScenario(t, string(raw))
			root := scenarioTree(t)
			pol, err := os.ReadFile(filepath.Join("testdata/policies", sp.policy+".cedar"))
			must(t, err)
			polPath := filepath.Join(t.TempDir(), sp.policy+".cedar")
			must(t, os.WriteFile(polPath, bytes.ReplaceAll(pol, []byte("{{root}}"), []byte(root)), 0o644))
			script := strings.ReplaceAll(string(raw), "{{root}}", root)
			args := []string{"--policy", polPath, "--output", "json"}
			for _, a := range sp.args {
				args = append(args, "--arg", strings.ReplaceAll(a, "{{root}}", root))
			}
			if sp.timeout != "" {
				args = append(args, "--timeout", sp.timeout)
			}
			o := rexExec(t, script, nil, args...)
			wantStatus(t, o, sp.status, sp.errType, sp.exit)
			if sp.output != nil {
				var want, got any
				if err := json.Unmarshal([]byte(strings.ReplaceAll(string(sp.output), "{{root}}", root)), &want); err != nil {
					t.Fatalf("bad output header: %v", err)
				}
				_ = json.Unmarshal(o.res.Output, &got)
				if !reflect.DeepEqual(want, got) {
					t.Errorf("output = %s\nwant     %s", o.res.Output, sp.output)
				}
			}
			if sp.hasStdout && o.res.Stdout != strings.ReplaceAll(sp.stdout, "{{root}}", root) {
				t.Errorf("stdout = %q, want %q", o.res.Stdout, sp.stdout)
			}
			if sp.denials >= 0 && len(o.res.Denials) != sp.denials {
				t.Errorf("%d denials, want %d: %+v", len(o.res.Denials), sp.denials, o.res.Denials)
			}
			if sp.contains != "" {
				msg := ""
				if o.res.Error != nil {
					msg = o.res.Error.Message
				}
				if !strings.Contains(msg, strings.ReplaceAll(sp.contains, "{{root}}", root)) {
					t.Errorf("error message %q lacks %q", msg, sp.contains)
				}
			}
			for _, secret := range []string{"TOPSECRET", "OUTSIDE"} {
				if strings.Contains(o.raw, secret) && !strings.Contains(string(raw), "allow-secret") {
					t.Errorf("secret %s leaked: %s", secret, o.raw)
				}
			}
			if t.Failed() {
				fmt.Fprintf(os.Stderr, "scenario %s result: %s\n", name, o.raw)
			}
		})
	}
}
