package sdk

import (
	"errors"
	"io/fs"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/risor-io/risor/object"

	"github.com/rex-sh/rex/ipc"
	"github.com/rex-sh/rex/sdk/sdktest"
)

// TestGlobalsPinned pins the allowlist: adding a global is a security
// decision and must show up as a change to this list.
func TestGlobalsPinned(t *testing.T) {
	want := append([]string{
		"print", "printf", "errorf",
		"base64", "bytes", "errors", "json", "math", "rand", "regexp", "strconv", "strings", "time",
		"fmt", "filepath", "os", "args", "fs", "proc", "net", "sys", "svc", "log", "metrics", "alarms",
	}, pureBuiltins...)
	sort.Strings(want)
	g := Globals(sdktest.New(), NewOutput(0), object.NewMap(nil))
	var got []string
	for k, v := range g {
		if v == nil {
			t.Errorf("global %q is nil (not in this Risor version?)", k)
		}
		got = append(got, k)
	}
	sort.Strings(got)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("globals =\n %v\nwant\n %v", got, want)
	}
}

// TestUnreachable shows that a script cannot name exec, http, fetch, the
// real OS's open, import, spawn or the network: they are not defined, or
// they fail without reaching anything.
func TestUnreachable(t *testing.T) {
	for _, script := range []string{
		`exec("/bin/sh", ["-c", "id"])`,
		`exec.command("id")`,
		`http.get("http://example.com")`,
		`fetch("http://example.com")`,
		`open("/etc/passwd")`,
		`cat("/etc/passwd")`,
		`ls("/")`,
		`getenv("HOME")`,
		`net.dial("tcp", "example.com:80")`,
		`dns.lookup("example.com")`,
		`nslookup("example.com")`,
		`spawn(func() { return 1 })`,
		`chan(1)`,
		`func f() { return 1 }; go f()`,
		`import exec`,
		`import http`,
		`from os import exec`,
		`os.chdir("/tmp")`,
		`os.setenv("A", "B")`,
		`os.hostname()`,
		`os.mkdir_temp("/tmp", "x")`,
		`os.user_home_dir()`,
		`os.current_user()`,
		`os.lookup_user("root")`,
		`os.stdin.read()`,
	} {
		f := sdktest.New()
		if _, _, err := eval(t, f, script); err == nil {
			t.Errorf("%s: ran", script)
		}
		if calls := f.Calls(); len(calls) != 0 {
			t.Errorf("%s: reached the broker: %+v", script, calls)
		}
	}
}

func TestEnvironmentIsEmpty(t *testing.T) {
	t.Setenv("HOME", "/home/real-user")
	t.Setenv("REX_SECRET", "s3cret")
	got := asJSON(t, mustEval(t, sdktest.New(), `[os.getenv("HOME"), os.getenv("REX_SECRET"), os.environ(), os.args(), os.getwd(), filepath.abs("x")]`))
	if got != `["","",[],[],"/","/x"]` {
		t.Errorf("environment seen by the script: %s", got)
	}
}

// TestOSGoesToBroker: the os module's file functions become broker
// requests, never host calls, even for a path that exists on this host.
func TestOSGoesToBroker(t *testing.T) {
	f := sdktest.New()
	_, _, err := eval(t, f, `os.read_file("/etc/passwd")`)
	wantIPCError(t, err, ipc.CodeUnsupported)
	if req := lastCall(t, f).Req.(*ipc.ReadReq); req.Path != "/etc/passwd" || !req.Follow {
		t.Errorf("request = %+v", req)
	}
	f.Reply(ipc.OpRead, &ipc.ReadResp{Data: []byte("from broker")})
	if got := asJSON(t, mustEval(t, f, `string(os.read_file("/etc/passwd"))`)); got != `"from broker"` {
		t.Errorf("read_file = %s", got)
	}
}

func TestOSFileFunctions(t *testing.T) {
	dir := ipc.FileInfo{Name: "d", Path: "/d", Kind: "dir", Mode: 0o755, MTime: "2024-05-01T10:00:00Z"}
	f := sdktest.New().
		Reply(ipc.OpStat, &fileStat).
		Reply(ipc.OpList, &ipc.ListResp{Entries: []ipc.FileInfo{fileStat, dir}}).
		Reply(ipc.OpMkdir, &ipc.Empty{}).
		Reply(ipc.OpRemove, &ipc.Empty{}).
		Reply(ipc.OpWrite, &ipc.WriteResp{N: 2})

	if got := asJSON(t, mustEval(t, f, `s := os.stat("/etc/hosts"); [s.name, s.size, s.is_dir, s.mod_time]`)); got != `["hosts",12,false,"2024-05-01T10:00:00Z"]` {
		t.Errorf("os.stat = %s", got)
	}
	if got := asJSON(t, mustEval(t, f, `os.read_dir("/etc").map(func(e) { return [e.name, e.is_dir] })`)); got != `[["d",true],["hosts",false]]` {
		t.Errorf("os.read_dir = %s", got)
	}
	if req := lastCall(t, f).Req.(*ipc.ListReq); !req.All {
		t.Errorf("os.read_dir must list hidden entries like Go: %+v", req)
	}
	mustEval(t, f, `os.write_file("/tmp/x", "hi", 384)`)
	if req := lastCall(t, f).Req.(*ipc.WriteReq); req.Mode != 0o600 || string(req.Data) != "hi" || req.Append {
		t.Errorf("os.write_file request = %+v", req)
	}
	mustEval(t, f, `os.mkdir_all("/tmp/a/b")`)
	if req := lastCall(t, f).Req.(*ipc.MkdirReq); !req.Parents {
		t.Errorf("os.mkdir_all request = %+v", req)
	}
	mustEval(t, f, `os.remove_all("/tmp/a")`)
	if req := lastCall(t, f).Req.(*ipc.RemoveReq); !req.Recursive || !req.Force {
		t.Errorf("os.remove_all request = %+v", req)
	}
}

// os.create truncates: an atomic empty write, then the open for writing.
func TestOSCreateTruncates(t *testing.T) {
	p := t.TempDir() + "/c"
	f := sdktest.New().
		Reply(ipc.OpWrite, &ipc.WriteResp{}).
		On(ipc.OpOpen, func(any) (any, *os.File, error) {
			fd, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
			return &ipc.FileInfo{Name: "c", Path: "/c", Kind: "file"}, fd, err
		})
	mustEval(t, f, `x := os.create("/c"); x.write("new"); x.close()`)
	calls := f.Calls()
	if len(calls) != 2 || calls[0].Op != ipc.OpWrite || calls[1].Op != ipc.OpOpen {
		t.Fatalf("calls = %+v", calls)
	}
	if w := calls[0].Req.(*ipc.WriteReq); len(w.Data) != 0 || w.Append || w.Path != "/c" {
		t.Errorf("truncating write = %+v", w)
	}
	if o := calls[1].Req.(*ipc.OpenReq); !o.Write || !o.Create || o.Append {
		t.Errorf("open = %+v", o)
	}
	if b, _ := os.ReadFile(p); string(b) != "new" {
		t.Errorf("file holds %q", b)
	}
	if _, err := NewOS(f, NewOutput(0)).OpenFile("/c", os.O_RDWR|os.O_CREATE|os.O_EXCL, 0); err == nil {
		t.Error("O_EXCL was accepted although the broker cannot honour it")
	}
}

func TestWalkDir(t *testing.T) {
	root := ipc.FileInfo{Name: "r", Path: "/r", Kind: "dir"}
	sub := ipc.FileInfo{Name: "sub", Path: "/r/sub", Kind: "dir"}
	skip := ipc.FileInfo{Name: "skip", Path: "/r/skip", Kind: "dir"}
	a := ipc.FileInfo{Name: "a", Kind: "file"}
	b := ipc.FileInfo{Name: "b", Kind: "file"}
	f := sdktest.New().Reply(ipc.OpStat, &root).On(ipc.OpList, func(req any) (any, *os.File, error) {
		switch req.(*ipc.ListReq).Path {
		case "/r":
			return &ipc.ListResp{Entries: []ipc.FileInfo{sub, a, skip}}, nil, nil
		case "/r/sub":
			return &ipc.ListResp{Entries: []ipc.FileInfo{b}}, nil, nil
		}
		return nil, nil, errors.New("listed a skipped directory")
	})
	var seen []string
	err := NewOS(f, NewOutput(0)).WalkDir("/r", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		seen = append(seen, p)
		if p == "/r/skip" {
			return fs.SkipDir
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(seen, " "); got != "/r /r/a /r/skip /r/sub /r/sub/b" {
		t.Errorf("walk order = %s", got)
	}
	got := asJSON(t, mustEval(t, f, `
		paths := []
		err := try(func() {
			filepath.walk_dir("/r", func(path, entry, err) {
				if path == "/r/skip" { return errors.new("stop") }
				paths.append(path)
			})
		}, func(e) { return e.message() })
		paths.append(err)
		paths`))
	if got != `["/r","/r/a","stop"]` {
		t.Errorf("filepath.walk_dir = %s", got)
	}
}

func TestExit(t *testing.T) {
	for script, code := range map[string]int{
		`os.exit(); 1`:                  0,
		`os.exit(0); 1`:                 0,
		`os.exit(3)`:                    3,
		`try(func() { os.exit(4) }, 5)`: 4,
		`os.exit(errors.new("bad"))`:    1,
	} {
		_, _, err := eval(t, sdktest.New(), script)
		var exit *ExitError
		if !errors.As(err, &exit) || exit.Code != code {
			t.Errorf("%s: err = %v, want exit %d", script, err, code)
		}
	}
}
