package worker

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/rex-sh/rex/ipc"
	"github.com/rex-sh/rex/sdk/sdktest"
)

func start(script string) *ipc.Start {
	return &ipc.Start{Version: ipc.Version, RunID: "r1", Script: []byte(script), ScriptName: "test.risor", Args: []byte(`{"who":"alice"}`)}
}

func TestRunSuccess(t *testing.T) {
	f := sdktest.New().Reply(ipc.OpRead, &ipc.ReadResp{Data: []byte("127.0.0.1 localhost\n")})
	res := Run(start(`
		print("hi", args.who)
		log.info("reading")
		{"hosts": fs.cat("/etc/hosts"), "n": 2}`), f)
	if res.ErrType != "" {
		t.Fatalf("error %s: %s", res.ErrType, res.ErrMessage)
	}
	if string(res.Output) != `{"hosts":"127.0.0.1 localhost\n","n":2}` {
		t.Errorf("output = %s", res.Output)
	}
	if res.Stdout != "hi alice\n" || res.StdoutTruncated {
		t.Errorf("stdout = %q", res.Stdout)
	}
	if len(res.Logs) != 1 || res.Logs[0].Message != "reading" {
		t.Errorf("logs = %+v", res.Logs)
	}
}

func TestRunNilOutput(t *testing.T) {
	res := Run(start(`x := 1`), sdktest.New())
	if res.ErrType != "" || res.Output != nil {
		t.Errorf("result = %+v", res)
	}
}

func TestRunErrors(t *testing.T) {
	denied := sdktest.Denied("read", "/etc/shadow")
	cases := []struct {
		name, script string
		fail         error
		wantType     string
		wantMsg      string
	}{
		{"compile", `x := (`, nil, ipc.ErrScript, "test.risor"},
		{"undefined", `exec("id")`, nil, ipc.ErrScript, "undefined"},
		{"runtime", `1 / 0`, nil, ipc.ErrScript, "divide by zero"},
		{"raised", `error("custom failure")`, nil, ipc.ErrScript, "custom failure"},
		{"exit", `os.exit(2)`, nil, ipc.ErrScript, "status 2"},
		{"not found", `fs.cat("/nope")`, ipc.Errorf(ipc.CodeNotFound, "no such file: /nope"), ipc.ErrScript, "no such file: /nope"},
		{"denied", `fs.cat("/etc/shadow")`, denied, ipc.ErrAccessDenied, denied.Message},
		{"denied in function", `func f() { return fs.cat("/etc/shadow") }; f()`, denied, ipc.ErrAccessDenied, denied.Message},
		{"limit", `fs.cat("/big")`, ipc.Errorf(ipc.CodeLimit, "quota"), ipc.ErrResourceLimit, "quota"},
		{"protocol", `fs.cat("/x")`, ipc.Errorf(ipc.CodeProtocol, "broker unreachable"), ipc.ErrCommunication, "broker unreachable"},
		{"timeout", `fs.cat("/x")`, ipc.Errorf(ipc.CodeTimeout, "deadline"), ipc.ErrTimeout, "deadline"},
		{"internal", `fs.cat("/x")`, ipc.Errorf(ipc.CodeInternal, "bug"), ipc.ErrInternal, "bug"},
		// A denial's text without its code is just a script error.
		{"denial text only", `error("` + strings.ReplaceAll(denied.Message, `"`, `\"`) + `")`, nil, ipc.ErrScript, "Permission denied"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := sdktest.New()
			if tc.fail != nil {
				f.Fail(ipc.OpRead, tc.fail)
			}
			res := Run(start(tc.script), f)
			if res.ErrType != tc.wantType || !strings.Contains(res.ErrMessage, tc.wantMsg) {
				t.Errorf("got %s %q, want %s containing %q", res.ErrType, res.ErrMessage, tc.wantType, tc.wantMsg)
			}
			if tc.wantType == ipc.ErrAccessDenied {
				if !reflect.DeepEqual(res.Denial, denied.Denial) || res.ErrMessage != denied.Message {
					t.Errorf("denial = %+v, message %q", res.Denial, res.ErrMessage)
				}
			} else if res.Denial != nil {
				t.Errorf("denial set on %s: %+v", res.ErrType, res.Denial)
			}
		})
	}
}

func TestRunCaughtDenialSucceeds(t *testing.T) {
	f := sdktest.New().Fail(ipc.OpRead, sdktest.Denied("read", "/etc/shadow"))
	res := Run(start(`try(func() { return fs.cat("/etc/shadow") }, "fallback")`), f)
	if res.ErrType != "" || string(res.Output) != `"fallback"` || res.Denial != nil {
		t.Errorf("result = %+v", res)
	}
}

func TestRunExitZero(t *testing.T) {
	res := Run(start(`print("bye"); os.exit(0); print("not reached")`), sdktest.New())
	if res.ErrType != "" || res.Stdout != "bye\n" || res.Output != nil {
		t.Errorf("result = %+v", res)
	}
}

func TestRunBadArgs(t *testing.T) {
	s := start(`1`)
	s.Args = []byte(`[1, 2]`)
	if res := Run(s, sdktest.New()); res.ErrType != ipc.ErrValidation {
		t.Errorf("result = %+v", res)
	}
}

func TestRunStdoutCap(t *testing.T) {
	s := start(`for i := 0; i < 100; i++ { print("0123456789") }`)
	s.MaxStdout = 25
	res := Run(s, sdktest.New())
	if res.ErrType != "" || len(res.Stdout) != 25 || !res.StdoutTruncated {
		t.Errorf("stdout %q truncated=%v err=%s", res.Stdout, res.StdoutTruncated, res.ErrType)
	}
}

func TestRunOutputTooLarge(t *testing.T) {
	res := Run(start(`strings.repeat("x", 5 * 1024 * 1024)`), sdktest.New())
	if res.ErrType != ipc.ErrResourceLimit || res.Output != nil {
		t.Errorf("result %s %q", res.ErrType, res.ErrMessage)
	}
}

// panicCaller stands in for a broken broker connection that panics.
type panicCaller struct{}

func (panicCaller) Call(ipc.Op, any, any) (*os.File, error) { panic("boom") }

func TestRunNeverPanics(t *testing.T) {
	res := Run(start(`print("before"); fs.cat("/x")`), panicCaller{})
	if res.ErrType == "" {
		t.Errorf("a panicking call passed: %+v", res)
	}
	if res.Stdout != "before\n" {
		t.Errorf("stdout lost: %q", res.Stdout)
	}
}

// TestScripts runs the .risor scenarios in testdata. Each starts with
// expectation comments:
//
//	// expect-status: SUCCESS | ERROR_TYPE
//	// expect-output: JSON
//	// broker: op=inline:TEXT | op=deny:RESOURCE
func TestScripts(t *testing.T) {
	files, err := os.ReadDir("testdata")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range files {
		if !strings.HasSuffix(e.Name(), ".risor") {
			continue
		}
		n++
		t.Run(e.Name(), func(t *testing.T) {
			src, err := os.ReadFile("testdata/" + e.Name())
			if err != nil {
				t.Fatal(err)
			}
			f := sdktest.New()
			var wantStatus, wantOutput string
			for _, line := range strings.Split(string(src), "\n") {
				k, v, ok := strings.Cut(strings.TrimPrefix(line, "// "), ": ")
				if !ok || !strings.HasPrefix(line, "// ") {
					continue
				}
				switch k {
				case "expect-status":
					wantStatus = v
				case "expect-output":
					wantOutput = v
				case "broker":
					opName, reply, _ := strings.Cut(v, "=")
					op := opByName(t, opName)
					kind, arg, _ := strings.Cut(reply, ":")
					switch kind {
					case "inline":
						f.Reply(op, &ipc.ReadResp{Data: []byte(strings.ReplaceAll(arg, `\n`, "\n"))})
					case "deny":
						f.Fail(op, sdktest.Denied("read", arg))
					default:
						t.Fatalf("unknown broker reply %q", reply)
					}
				}
			}
			res := Run(&ipc.Start{Script: src, ScriptName: e.Name()}, f)
			status := res.ErrType
			if status == "" {
				status = ipc.StatusSuccess
			}
			if status != wantStatus {
				t.Errorf("status %s (%s), want %s", status, res.ErrMessage, wantStatus)
			}
			if wantOutput != "" && string(res.Output) != wantOutput {
				t.Errorf("output %s, want %s", res.Output, wantOutput)
			}
		})
	}
	if n == 0 {
		t.Fatal("no scenarios in testdata")
	}
}

func opByName(t *testing.T, name string) ipc.Op {
	for _, op := range ipc.Ops() {
		if op.String() == name {
			return op
		}
	}
	t.Fatalf("unknown op %q", name)
	return 0
}
