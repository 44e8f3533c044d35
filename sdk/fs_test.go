package sdk

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/rex-sh/rex/ipc"
	"github.com/rex-sh/rex/sdk/sdktest"
)

var fileStat = ipc.FileInfo{
	Name: "hosts", Path: "/etc/hosts", Kind: "file", Size: 12, Mode: 0o644,
	Owner: "root", Group: "root", MTime: "2024-05-01T10:00:00Z", Nlink: 1,
}

func TestFSCatInline(t *testing.T) {
	f := sdktest.New().Reply(ipc.OpRead, &ipc.ReadResp{Data: []byte("a\nb\n"), Size: 4})
	if got := asJSON(t, mustEval(t, f, `fs.cat("/etc/hosts")`)); got != `"a\nb\n"` {
		t.Errorf("cat = %s", got)
	}
	if req := lastCall(t, f).Req.(*ipc.ReadReq); req.Path != "/etc/hosts" || req.Follow {
		t.Errorf("request = %+v", req)
	}
	got := asJSON(t, mustEval(t, f, `fs.cat("etc/hosts", {number: true, follow: true})`))
	if got != `"     1\ta\n     2\tb\n"` {
		t.Errorf("cat -n = %s", got)
	}
	if req := lastCall(t, f).Req.(*ipc.ReadReq); req.Path != "etc/hosts" || !req.Follow {
		t.Errorf("relative path must pass through as given, follow set: %+v", req)
	}
}

func TestNumberLines(t *testing.T) {
	for in, want := range map[string]string{
		"":       "",
		"x":      "     1\tx",
		"x\n":    "     1\tx\n",
		"x\n\ny": "     1\tx\n     2\t\n     3\ty",
	} {
		if got := numberLines(in); got != want {
			t.Errorf("numberLines(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFSReadThroughDescriptor(t *testing.T) {
	body := strings.Repeat("line\n", 20000)
	f := sdktest.New().On(ipc.OpRead, func(any) (any, *os.File, error) {
		return &ipc.ReadResp{FD: true, Size: int64(len(body))}, fileWith(t, []byte(body)), nil
	})
	if got := mustEval(t, f, `fs.cat("/var/log/big")`).(interface{ Value() string }).Value(); got != body {
		t.Errorf("cat through fd returned %d bytes, want %d", len(got), len(body))
	}
	if got := asJSON(t, mustEval(t, f, `len(fs.read_bytes("/var/log/big"))`)); got != "100000" {
		t.Errorf("len(read_bytes) = %s", got)
	}
}

func TestFSReadCap(t *testing.T) {
	// A sparse file one byte over the cap; the broker's size hint is small
	// to show that the cap holds even when the file grew after fstat.
	big, err := os.CreateTemp(t.TempDir(), "big")
	if err != nil {
		t.Fatal(err)
	}
	if err := big.Truncate(MaxRead + 1); err != nil {
		t.Fatal(err)
	}
	name := big.Name()
	big.Close()
	for _, size := range []int64{10, MaxRead + 1} {
		f := sdktest.New().On(ipc.OpRead, func(any) (any, *os.File, error) {
			fd, err := os.Open(name)
			return &ipc.ReadResp{FD: true, Size: size}, fd, err
		})
		_, _, err := eval(t, f, `fs.cat("/big")`)
		ie := wantIPCError(t, err, ipc.CodeLimit)
		if !strings.Contains(ie.Message, "use fs.open") {
			t.Errorf("size %d: message %q does not point to fs.open", size, ie.Message)
		}
	}
}

func TestFSReadProtocolErrors(t *testing.T) {
	f := sdktest.New().Reply(ipc.OpRead, &ipc.ReadResp{FD: true, Size: 3})
	_, _, err := eval(t, f, `fs.cat("/x")`)
	wantIPCError(t, err, ipc.CodeProtocol)
}

func TestFSStat(t *testing.T) {
	f := sdktest.New().Reply(ipc.OpStat, &fileStat)
	got := asJSON(t, mustEval(t, f, `fs.stat("/etc/hosts")`))
	want := `{"gid":0,"group":"root","kind":"file","mode":420,"mtime":"2024-05-01T10:00:00Z","name":"hosts","nlink":1,"owner":"root","path":"/etc/hosts","size":12,"uid":0}`
	if got != want {
		t.Errorf("stat =\n %s\nwant\n %s", got, want)
	}
	link := fileStat
	link.Kind, link.Target = "symlink", "/etc/hosts.real"
	f.Reply(ipc.OpStat, &link)
	if got := asJSON(t, mustEval(t, f, `fs.stat("/etc/hosts")["target"]`)); got != `"/etc/hosts.real"` {
		t.Errorf("symlink target = %s", got)
	}
}

func TestFSExists(t *testing.T) {
	f := sdktest.New().Reply(ipc.OpExists, &ipc.ExistsResp{Exists: true})
	if got := asJSON(t, mustEval(t, f, `fs.exists("/etc/hosts")`)); got != "true" {
		t.Errorf("exists = %s", got)
	}
	f.Reply(ipc.OpExists, &ipc.ExistsResp{Exists: false})
	if got := asJSON(t, mustEval(t, f, `fs.exists("/nope")`)); got != "false" {
		t.Errorf("exists = %s", got)
	}
}

func TestFSLs(t *testing.T) {
	hidden := fileStat
	hidden.Name = ".secret"
	f := sdktest.New().Reply(ipc.OpList, &ipc.ListResp{Entries: []ipc.FileInfo{fileStat, hidden}})
	if got := asJSON(t, mustEval(t, f, `keys(fs.ls("/etc"))`)); got != `["hosts"]` {
		t.Errorf("ls = %s", got)
	}
	if got := asJSON(t, mustEval(t, f, `sorted(keys(fs.ls("/etc", {all: true})))`)); got != `[".secret","hosts"]` {
		t.Errorf("ls all = %s", got)
	}
	if req := lastCall(t, f).Req.(*ipc.ListReq); !req.All || req.Path != "/etc" {
		t.Errorf("request = %+v", req)
	}
	if got := asJSON(t, mustEval(t, f, `fs.ls("/etc")["hosts"]["size"]`)); got != "12" {
		t.Errorf("entry size = %s", got)
	}
}

func TestFSWrite(t *testing.T) {
	f := sdktest.New().On(ipc.OpWrite, func(req any) (any, *os.File, error) {
		return &ipc.WriteResp{N: int64(len(req.(*ipc.WriteReq).Data))}, nil, nil
	})
	if got := asJSON(t, mustEval(t, f, `fs.write("/tmp/a", "hello")`)); got != "5" {
		t.Errorf("write = %s", got)
	}
	if got := asJSON(t, mustEval(t, f, `fs.write("/tmp/a", byte_slice([1, 2]), {append: true})`)); got != "2" {
		t.Errorf("write bytes = %s", got)
	}
	req := lastCall(t, f).Req.(*ipc.WriteReq)
	if !req.Append || !reflect.DeepEqual(req.Data, []byte{1, 2}) || req.Path != "/tmp/a" {
		t.Errorf("request = %+v", req)
	}
	n := len(f.Calls())
	_, _, err := eval(t, f, `fs.write("/tmp/a", strings.repeat("x", 200000))`)
	ie := wantIPCError(t, err, ipc.CodeLimit)
	if !strings.Contains(ie.Message, "fs.open") {
		t.Errorf("message %q does not point to fs.open", ie.Message)
	}
	if len(f.Calls()) != n {
		t.Error("an oversized write reached the broker")
	}
	if _, _, err := eval(t, f, `fs.write("/tmp/a", 5)`); err == nil {
		t.Error("writing an int was accepted")
	}
}

func TestFSMkdirRm(t *testing.T) {
	f := sdktest.New().Reply(ipc.OpMkdir, &ipc.Empty{}).Reply(ipc.OpRemove, &ipc.Empty{})
	mustEval(t, f, `fs.mkdir("/tmp/d", {parents: true})`)
	if req := lastCall(t, f).Req.(*ipc.MkdirReq); !req.Parents || req.Path != "/tmp/d" {
		t.Errorf("mkdir request = %+v", req)
	}
	mustEval(t, f, `fs.rm("/tmp/d", {recursive: true, force: true})`)
	if req := lastCall(t, f).Req.(*ipc.RemoveReq); !req.Recursive || !req.Force || req.Path != "/tmp/d" {
		t.Errorf("rm request = %+v", req)
	}
	mustEval(t, f, `fs.rm("/tmp/f")`)
	if req := lastCall(t, f).Req.(*ipc.RemoveReq); req.Recursive || req.Force {
		t.Errorf("rm without options = %+v", req)
	}
}

func TestFSOpenRead(t *testing.T) {
	f := sdktest.New().On(ipc.OpOpen, func(any) (any, *os.File, error) {
		return &fileStat, fileWith(t, []byte("one\ntwo\n")), nil
	})
	got := asJSON(t, mustEval(t, f, `
		file := fs.open("/etc/hosts")
		lines := file.read_lines()
		size := file.stat().size
		file.close()
		[lines, size]`))
	if got != `[["one","two"],12]` {
		t.Errorf("open/read_lines = %s", got)
	}
	if req := lastCall(t, f).Req.(*ipc.OpenReq); req.Write || req.Create || req.Path != "/etc/hosts" {
		t.Errorf("request = %+v", req)
	}
	_, _, err := eval(t, f, `fs.open("/etc/hosts").write("x")`)
	if err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("write on a read-only file: %v", err)
	}
}

func TestFSOpenWrite(t *testing.T) {
	p := t.TempDir() + "/out"
	f := sdktest.New().On(ipc.OpOpen, func(req any) (any, *os.File, error) {
		fd, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		return &ipc.FileInfo{Name: "out", Path: "/out", Kind: "file"}, fd, err
	})
	mustEval(t, f, `
		file := fs.open("/out", {append: true, create: true})
		file.write("hello ")
		file.write(byte_slice("world"))
		file.close()`)
	if req := lastCall(t, f).Req.(*ipc.OpenReq); !req.Write || !req.Create || !req.Append {
		t.Errorf("request = %+v", req)
	}
	if b, _ := os.ReadFile(p); string(b) != "hello world" {
		t.Errorf("file holds %q", b)
	}
	f.Reply(ipc.OpOpen, &fileStat)
	_, _, err := eval(t, f, `fs.open("/out")`)
	wantIPCError(t, err, ipc.CodeProtocol)
}

func TestFSOptionsChecked(t *testing.T) {
	f := sdktest.New().Reply(ipc.OpRemove, &ipc.Empty{})
	for _, script := range []string{
		`fs.rm("/x", {recursve: true})`,
		`fs.rm("/x", {recursive: "yes"})`,
		`fs.rm("/x", "recursive")`,
		`fs.rm(1)`,
		`fs.rm()`,
	} {
		if _, _, err := eval(t, f, script); err == nil {
			t.Errorf("%s: accepted", script)
		}
	}
	if len(f.Calls()) != 0 {
		t.Errorf("bad arguments reached the broker: %+v", f.Calls())
	}
}

// Every fs function has a deny case: the broker's denial reaches the script
// as a Risor error that try() catches with the broker's message unchanged,
// and, uncaught, ends the script with the *ipc.Error and its Denial.
func TestFSDenied(t *testing.T) {
	cases := []struct {
		op   ipc.Op
		call string
	}{
		{ipc.OpRead, `fs.cat("/etc/shadow")`},
		{ipc.OpRead, `fs.read_bytes("/etc/shadow")`},
		{ipc.OpStat, `fs.stat("/etc/shadow")`},
		{ipc.OpExists, `fs.exists("/etc/shadow")`},
		{ipc.OpList, `fs.ls("/etc/shadow")`},
		{ipc.OpWrite, `fs.write("/etc/shadow", "x")`},
		{ipc.OpMkdir, `fs.mkdir("/etc/shadow")`},
		{ipc.OpRemove, `fs.rm("/etc/shadow")`},
		{ipc.OpOpen, `fs.open("/etc/shadow")`},
		{ipc.OpRead, `os.read_file("/etc/shadow")`},
		{ipc.OpStat, `os.stat("/etc/shadow")`},
		{ipc.OpList, `os.read_dir("/etc/shadow")`},
		{ipc.OpWrite, `os.write_file("/etc/shadow", "x")`},
		{ipc.OpOpen, `os.open("/etc/shadow")`},
		{ipc.OpMkdir, `os.mkdir("/etc/shadow")`},
		{ipc.OpRemove, `os.remove("/etc/shadow")`},
	}
	denied := sdktest.Denied("read", "/etc/shadow")
	for _, tc := range cases {
		f := sdktest.New().Fail(tc.op, denied)
		got := mustEval(t, f, `try(func() { return `+tc.call+` }, func(e) { return e.message() })`)
		if s, ok := got.(interface{ Value() string }); !ok || s.Value() != denied.Message {
			t.Errorf("%s: try gave %s, want the broker's message", tc.call, got.Inspect())
		}
		_, _, err := eval(t, f, tc.call)
		ie := wantIPCError(t, err, ipc.CodeDenied)
		if ie.Denial == nil || ie.Denial.Resource != `file_system::File::"/etc/shadow"` {
			t.Errorf("%s: denial = %+v", tc.call, ie.Denial)
		}
		if err.Error() != denied.Message {
			t.Errorf("%s: uncaught message %q", tc.call, err.Error())
		}
		// A denial raised inside a script function, caught as a value and
		// raised again keeps its identity too.
		_, _, err = eval(t, f, `func g() { return `+tc.call+` }
			e := try(g, func(e) { return e })
			error(e)`)
		if !errors.Is(err, &ipc.Error{Code: ipc.CodeDenied}) {
			t.Errorf("%s: re-raised denial lost its code: %v", tc.call, err)
		}
	}
}
