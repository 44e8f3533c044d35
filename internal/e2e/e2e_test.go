// Package e2e runs rex the way users do: the real rex-exec, rex-broker and
// rex-worker binaries, the real sandbox, real policies on real files.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rex-sh/rex/internal/testutil"
	"github.com/rex-sh/rex/ipc"
)

// fixture is a directory tree with a readable file, a secret and a policy.
type fixture struct {
	dir, data, secret, policy string
}

const basePolicy = `
@id("data-dir-open")
permit(principal, action == file_system::Action::"open", resource == file_system::Dir::"%[1]s");
@id("data-read")
permit(principal, action in [file_system::Action::"open", file_system::Action::"read", file_system::Action::"stat"],
       resource in file_system::Dir::"%[1]s");
@id("data-write")
permit(principal, action in [file_system::Action::"write", file_system::Action::"create", file_system::Action::"delete"],
       resource in file_system::Dir::"%[1]s/out");
@id("no-secret")
forbid(principal, action, resource == file_system::File::"%[1]s/secret");
`

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	// The worker runs as an unprivileged uid: nothing here needs to be
	// readable by it, since the broker does every operation.
	f := &fixture{dir: dir, data: filepath.Join(dir, "data")}
	must(t, os.MkdirAll(filepath.Join(f.data, "out"), 0o755))
	must(t, os.WriteFile(filepath.Join(f.data, "hello.txt"), []byte("hello world\n"), 0o644))
	f.secret = filepath.Join(f.data, "secret")
	must(t, os.WriteFile(f.secret, []byte("TOPSECRET\n"), 0o600))
	f.policy = filepath.Join(dir, "policy.cedar")
	must(t, os.WriteFile(f.policy, []byte(fmt.Sprintf(basePolicy, f.data)), 0o644))
	return f
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

type outcome struct {
	res   ipc.Result
	code  int
	raw   string
	err   string
	took  time.Duration
	audit []map[string]any
}

// rexExec runs rex-exec with args and the script on stdin.
func rexExec(t *testing.T, script string, env []string, args ...string) outcome {
	t.Helper()
	bin := testutil.Binaries(t)
	cmd := exec.Command(filepath.Join(bin, "rex-exec"), append(args, "-")...)
	cmd.Stdin = strings.NewReader(script)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	o := outcome{raw: out.String(), err: errb.String(), took: time.Since(start)}
	if ee, ok := err.(*exec.ExitError); ok {
		o.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("rex-exec: %v", err)
	}
	if err := json.Unmarshal(out.Bytes(), &o.res); err != nil {
		t.Fatalf("rex-exec printed no JSON result (exit %d): %v\nstdout: %s\nstderr: %s", o.code, err, out.String(), errb.String())
	}
	return o
}

// standalone runs a script with rex-exec --policy and reads its audit log.
func standalone(t *testing.T, f *fixture, script string, extra ...string) outcome {
	t.Helper()
	audit := filepath.Join(t.TempDir(), "audit.jsonl")
	o := rexExec(t, script, []string{"REX_AUDIT_LOG=" + audit}, append([]string{"--policy", f.policy, "--output", "json"}, extra...)...)
	o.audit = readAudit(t, audit)
	return o
}

func readAudit(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var recs []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("audit line is not JSON: %q", sc.Text())
		}
		recs = append(recs, m)
	}
	return recs
}

func wantStatus(t *testing.T, o outcome, status, errType string, code int) {
	t.Helper()
	got := ""
	if o.res.Error != nil {
		got = o.res.Error.ErrorType
	}
	if o.res.Status != status || got != errType || o.code != code {
		t.Fatalf("got status %s error %q exit %d, want %s %q exit %d\nresult: %s\nstderr: %s",
			o.res.Status, got, o.code, status, errType, code, o.raw, o.err)
	}
}

func requireSandbox(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		testutil.RequireUserns(t)
	}
}

func TestReadAllowedThenDeniedStandalone(t *testing.T) {
	requireSandbox(t)
	f := newFixture(t)
	script := fmt.Sprintf(`print(fs.cat(%q))
fs.cat(%q)`, f.data+"/hello.txt", f.secret)
	o := standalone(t, f, script)
	wantStatus(t, o, ipc.StatusError, ipc.ErrAccessDenied, 3)
	checkDenial(t, o, f)
}

func checkDenial(t *testing.T, o outcome, f *fixture) {
	t.Helper()
	if o.res.Stdout != "hello world\n\n" && o.res.Stdout != "hello world\n" {
		t.Errorf("stdout = %q", o.res.Stdout)
	}
	e := o.res.Error
	wantRes := fmt.Sprintf(`file_system::File::"%s"`, f.secret)
	if e.Resource != wantRes || e.Action != `file_system::Action::"open"` || strings.Join(e.PolicyIDs, ",") != "no-secret" {
		t.Errorf("denial = %+v", e)
	}
	wantMsg := fmt.Sprintf(`Permission denied: %s unauthorized to perform file_system::Action::"open" for %s`, currentUser(t), wantRes)
	if e.Message != wantMsg {
		t.Errorf("message = %q\nwant      %q", e.Message, wantMsg)
	}
	if strings.Contains(o.raw, "TOPSECRET") {
		t.Fatal("secret leaked into the result")
	}
	if len(o.res.Denials) != 1 || o.res.Denials[0].Resource != wantRes {
		t.Errorf("denials = %+v", o.res.Denials)
	}
	var sawAllow, sawDeny bool
	for _, r := range o.audit {
		if r["event"] != "decision" {
			continue
		}
		if r["decision"] == "allow" && r["resource"] == fmt.Sprintf(`file_system::File::"%s/hello.txt"`, f.data) {
			sawAllow = true
		}
		if r["decision"] == "deny" && r["resource"] == wantRes {
			ids, _ := r["policy_ids"].([]any)
			sawDeny = len(ids) == 1 && ids[0] == "no-secret"
		}
	}
	if !sawAllow || !sawDeny {
		t.Errorf("audit lacks the allow or the deny record (allow %v deny %v): %v", sawAllow, sawDeny, o.audit)
	}
}

func currentUser(t *testing.T) string {
	out, err := exec.Command("id", "-un").Output()
	if err != nil {
		return strconv.Itoa(os.Getuid())
	}
	return strings.TrimSpace(string(out))
}

func TestCaughtDenialSucceedsAndIsListed(t *testing.T) {
	requireSandbox(t)
	f := newFixture(t)
	script := fmt.Sprintf(`msg := try(func() { return fs.cat(%q) }, func(e) { return e.message() })
msg`, f.secret)
	o := standalone(t, f, script)
	wantStatus(t, o, ipc.StatusSuccess, "", 0)
	var out string
	_ = json.Unmarshal(o.res.Output, &out)
	if !strings.HasPrefix(out, "Permission denied: ") {
		t.Errorf("caught message = %q", out)
	}
	if len(o.res.Denials) != 1 || o.res.Denials[0].PolicyIDs[0] != "no-secret" {
		t.Errorf("denials = %+v", o.res.Denials)
	}
}

func TestScriptErrors(t *testing.T) {
	requireSandbox(t)
	f := newFixture(t)
	t.Run("compile error", func(t *testing.T) {
		o := standalone(t, f, "x := := 1")
		wantStatus(t, o, ipc.StatusError, ipc.ErrScript, 4)
	})
	t.Run("runtime error", func(t *testing.T) {
		o := standalone(t, f, `x := 1; x.nope()`)
		wantStatus(t, o, ipc.StatusError, ipc.ErrScript, 4)
	})
	t.Run("infinite loop", func(t *testing.T) {
		o := standalone(t, f, "x := 0\nfor { x++ }", "--timeout", "2s")
		wantStatus(t, o, ipc.StatusError, ipc.ErrTimeout, 5)
		if o.took > 4*time.Second {
			t.Errorf("timeout of 2s took %v", o.took)
		}
	})
	t.Run("memory bomb", func(t *testing.T) {
		o := standalone(t, f, `s := "xxxxxxxxxxxxxxxx"
l := []
for { l.append(s); s = s + s }`, "--timeout", "20s")
		wantStatus(t, o, ipc.StatusError, ipc.ErrResourceLimit, 5)
	})
}

// The sandbox reaches nothing but the broker: no exec, no network, no
// imports, no real OS.
func TestUnreachableCapabilities(t *testing.T) {
	requireSandbox(t)
	f := newFixture(t)
	for _, src := range []string{
		`exec("/bin/sh", ["-c", "id"])`,
		`http.get("http://127.0.0.1/")`,
		`fetch("http://127.0.0.1/")`,
		`import exec`,
		`import http`,
		`open("/etc/passwd")`,
		`os.exec("/bin/sh")`,
	} {
		o := standalone(t, f, src)
		if o.res.Status != ipc.StatusError || o.res.Error.ErrorType != ipc.ErrScript {
			t.Errorf("%s: got %s %+v", src, o.res.Status, o.res.Error)
		}
	}
	// Risor's os module is the broker-backed one: the host environment and
	// files are out of reach unless the policy says so.
	o := standalone(t, f, `[os.getenv("HOME"), os.getenv("PATH"), try(func() { return os.read_file("/etc/passwd") }, "denied")]`)
	wantStatus(t, o, ipc.StatusSuccess, "", 0)
	if string(o.res.Output) != `["","","denied"]` {
		t.Errorf("os module reached the host: %s", o.res.Output)
	}
}

func TestArgsAndOutput(t *testing.T) {
	requireSandbox(t)
	f := newFixture(t)
	argsFile := filepath.Join(t.TempDir(), "args.json")
	must(t, os.WriteFile(argsFile, []byte(`{"who": {"stringValue": "rex"}, "n": {"longValue": 3}}`), 0o644))
	o := standalone(t, f, `print("hi", args.who); {"who": args.who, "n": args.n, "extra": args.extra, "j": args.j}`,
		"--args-file", argsFile, "--arg", "extra=x y", "--arg-json", `j={"a":[1,2]}`)
	wantStatus(t, o, ipc.StatusSuccess, "", 0)
	var got map[string]any
	_ = json.Unmarshal(o.res.Output, &got)
	if got["who"] != "rex" || got["n"] != float64(3) || got["extra"] != "x y" || fmt.Sprint(got["j"]) != "map[a:[1 2]]" {
		t.Errorf("output = %s", o.res.Output)
	}
	if o.res.Stdout != "hi rex\n" || o.res.RunID == "" {
		t.Errorf("stdout %q run_id %q", o.res.Stdout, o.res.RunID)
	}
	bad := rexExec(t, "1", nil, "--policy", f.policy, "--arg-json", "j={nope")
	wantStatus(t, bad, ipc.StatusError, ipc.ErrValidation, 2)
	badPolicy := filepath.Join(t.TempDir(), "bad.cedar")
	must(t, os.WriteFile(badPolicy, []byte("permit(principal, action == file_system::Action::\"fly\", resource);"), 0o644))
	bp := rexExec(t, "1", nil, "--policy", badPolicy)
	wantStatus(t, bp, ipc.StatusError, ipc.ErrValidation, 2)
}

func TestFileOperationsStandalone(t *testing.T) {
	requireSandbox(t)
	f := newFixture(t)
	out := f.data + "/out"
	script := fmt.Sprintf(`
fs.write(%[1]q + "/a.txt", "one\n")
fs.write(%[1]q + "/a.txt", "two\n", {append: true})
fs.mkdir(%[1]q + "/d/e", {parents: true})
st := fs.stat(%[1]q + "/a.txt")
names := keys(fs.ls(%[1]q))
os.write_file(%[1]q + "/b.txt", "via os")
b := string(os.read_file(%[1]q + "/b.txt"))
fs.rm(%[1]q + "/d", {recursive: true})
{"content": fs.cat(%[1]q + "/a.txt"), "size": st.size, "kind": st.kind, "names": sorted(names),
 "b": b, "exists_d": fs.exists(%[1]q + "/d"), "bytes": len(fs.read_bytes(%[1]q + "/a.txt"))}`, out)
	o := standalone(t, f, script)
	wantStatus(t, o, ipc.StatusSuccess, "", 0)
	var got map[string]any
	_ = json.Unmarshal(o.res.Output, &got)
	if got["content"] != "one\ntwo\n" || got["size"] != float64(8) || got["kind"] != "file" ||
		fmt.Sprint(got["names"]) != "[a.txt d]" || got["b"] != "via os" || got["exists_d"] != false || got["bytes"] != float64(8) {
		t.Errorf("output = %s", o.res.Output)
	}
	if b, _ := os.ReadFile(out + "/a.txt"); string(b) != "one\ntwo\n" {
		t.Errorf("host file = %q", b)
	}
	// Writing outside the write grant is denied and changes nothing.
	o = standalone(t, f, fmt.Sprintf(`fs.write(%q, "pwned")`, f.data+"/hello.txt"))
	wantStatus(t, o, ipc.StatusError, ipc.ErrAccessDenied, 3)
	if b, _ := os.ReadFile(f.data + "/hello.txt"); string(b) != "hello world\n" {
		t.Fatalf("denied write changed the file: %q", b)
	}
}

// A large file comes back through a read-only descriptor.
func TestLargeReadThroughDescriptor(t *testing.T) {
	requireSandbox(t)
	f := newFixture(t)
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	must(t, os.WriteFile(f.data+"/big.bin", big, 0o644))
	o := standalone(t, f, fmt.Sprintf(`len(fs.read_bytes(%q))`, f.data+"/big.bin"))
	wantStatus(t, o, ipc.StatusSuccess, "", 0)
	if string(o.res.Output) != strconv.Itoa(len(big)) {
		t.Errorf("read %s bytes, want %d", o.res.Output, len(big))
	}
}

// ---- daemon mode ------------------------------------------------------------

type daemon struct {
	socket, audit string
	cmd           *exec.Cmd
	stderr        *bytes.Buffer
}

func startDaemon(t *testing.T, policyDir string, extra ...string) *daemon {
	t.Helper()
	testutil.RequireRoot(t)
	bin := testutil.Binaries(t)
	// Not t.TempDir: its parent is 0700, and unprivileged clients must
	// reach the socket.
	dir, err := os.MkdirTemp("", "rex-e2e-")
	must(t, err)
	must(t, os.Chmod(dir, 0o755))
	t.Cleanup(func() { os.RemoveAll(dir) })
	d := &daemon{socket: filepath.Join(dir, "rex.sock"), audit: filepath.Join(dir, "audit.jsonl"), stderr: &bytes.Buffer{}}
	args := append([]string{"--socket", d.socket, "--policy-dir", policyDir, "--audit-log", d.audit, "--socket-mode", "0666"}, extra...)
	d.cmd = exec.Command(filepath.Join(bin, "rex-broker"), args...)
	d.cmd.Stderr = d.stderr
	must(t, d.cmd.Start())
	t.Cleanup(func() {
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = d.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = d.cmd.Process.Kill()
			t.Error("broker did not stop on SIGTERM")
		}
	})
	for i := 0; i < 200; i++ {
		if _, err := os.Stat(d.socket); err == nil {
			return d
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("broker did not create its socket: %s", d.stderr)
	return nil
}

func (d *daemon) alive(t *testing.T) {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("broker died: %v\n%s", err, d.stderr)
	}
}

func policyDir(t *testing.T, f *fixture) string {
	dir := t.TempDir()
	b, err := os.ReadFile(f.policy)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(dir, "rex.cedar"), b, 0o644))
	return dir
}

func TestDaemonAllowedThenDenied(t *testing.T) {
	f := newFixture(t)
	d := startDaemon(t, policyDir(t, f))
	script := fmt.Sprintf(`print(fs.cat(%q))
fs.cat(%q)`, f.data+"/hello.txt", f.secret)
	o := rexExec(t, script, nil, "--socket", d.socket)
	wantStatus(t, o, ipc.StatusError, ipc.ErrAccessDenied, 3)
	o.audit = readAudit(t, d.audit)
	checkDenial(t, o, f)

	// Caught denial, then a memory bomb and an endless loop: the broker
	// keeps serving through all of them.
	o = rexExec(t, fmt.Sprintf(`try(func() { fs.cat(%q) }, "caught")`, f.secret), nil, "--socket", d.socket)
	wantStatus(t, o, ipc.StatusSuccess, "", 0)
	o = rexExec(t, `s := "x"; l := []; for { l.append(s); s = s + s }`, nil, "--socket", d.socket)
	wantStatus(t, o, ipc.StatusError, ipc.ErrResourceLimit, 5)
	o = rexExec(t, `for {}`, nil, "--socket", d.socket, "--timeout", "1s")
	wantStatus(t, o, ipc.StatusError, ipc.ErrTimeout, 5)
	d.alive(t)
	o = rexExec(t, `1 + 1`, nil, "--socket", d.socket)
	wantStatus(t, o, ipc.StatusSuccess, "", 0)
	if string(o.res.Output) != "2" {
		t.Errorf("output %s", o.res.Output)
	}
}

// The principal is the socket peer: a request cannot claim another
// identity, and an unprivileged caller is named by its own uid.
func TestDaemonPrincipalFromPeerCredentials(t *testing.T) {
	f := newFixture(t)
	dir := policyDir(t, f)
	must(t, os.WriteFile(filepath.Join(dir, "nobody.cedar"), []byte(fmt.Sprintf(`
@id("nobody-only")
permit(principal == User::"nobody", action == file_system::Action::"stat", resource == file_system::File::"%s/nobody.txt");
`, f.dir)), 0o644))
	must(t, os.WriteFile(f.dir+"/nobody.txt", []byte("n"), 0o600))
	d := startDaemon(t, dir)
	script := fmt.Sprintf(`fs.exists(%q)`, f.dir+"/nobody.txt")

	bin := testutil.Binaries(t)
	cmd := exec.Command(filepath.Join(bin, "rex-exec"), "--socket", d.socket, "-")
	cmd.Stdin = strings.NewReader(script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, _ := cmd.Output()
	var res ipc.Result
	if err := json.Unmarshal(out, &res); err != nil || res.Status != ipc.StatusSuccess || string(res.Output) != "true" {
		t.Fatalf("nobody: %s (%v)", out, err)
	}
	// root is not nobody: denied on the same request.
	o := rexExec(t, script, nil, "--socket", d.socket)
	wantStatus(t, o, ipc.StatusError, ipc.ErrAccessDenied, 3)
}

// Sandbox posture, read from outside while a script runs (CONVENTIONS §11).
func TestWorkerPosture(t *testing.T) {
	f := newFixture(t)
	d := startDaemon(t, policyDir(t, f))
	checkWorkerPosture(t, d.cmd.Process.Pid, "--socket", d.socket)
}

// A root standalone run's worker has the daemon's posture, down to making
// its own user namespace (broker.Config.WorkerUsernsEach).
func TestStandaloneWorkerPosture(t *testing.T) {
	testutil.RequireRoot(t)
	f := newFixture(t)
	worker, engine := checkWorkerPosture(t, 0, "--policy", f.policy)
	if runtime.GOARCH != "amd64" {
		return
	}
	// On amd64 the engine's entry point started this worker, before the Go
	// runtime started any thread: the worker's pid came before every
	// thread's id but the main one's (pids count up; a wrap in between
	// would be the only exception).
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", engine))
	must(t, err)
	for _, task := range tasks {
		if tid, _ := strconv.Atoi(task.Name()); tid != engine && tid < worker {
			t.Errorf("engine thread %d started before worker %d: the engine's entry point did not start the worker", tid, worker)
		}
	}
}

// checkWorkerPosture runs a script that loops until its timeout through
// rex-exec with mode (--socket or --policy), finds its worker, a child of
// broker (0: of rex-exec itself), once locked down, and reads its sandbox
// from outside. It returns the worker's pid and its broker's, both still
// running until the test ends.
func checkWorkerPosture(t *testing.T, broker int, mode ...string) (worker, brokerPID int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, filepath.Join(testutil.Binaries(t), "rex-exec"), append(mode, "--timeout", "10s", "-")...)
	cmd.Stdin = strings.NewReader(`for {}`)
	must(t, cmd.Start())
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	if broker == 0 {
		broker = cmd.Process.Pid
	}
	var pid int
	for i := 0; i < 300 && pid == 0; i++ {
		time.Sleep(10 * time.Millisecond)
		pid = childNamed(broker, "rex-worker")
		if pid != 0 && !lockedDown(pid) {
			pid = 0
		}
	}
	if pid == 0 {
		t.Fatal("no running worker found")
	}
	time.Sleep(100 * time.Millisecond)
	status := readStatus(t, pid)
	for k, want := range map[string]string{
		"Seccomp": "2", "NoNewPrivs": "1", "CapEff": "0000000000000000", "CapPrm": "0000000000000000",
		"CapBnd": "0000000000000000", "CapAmb": "0000000000000000", "CapInh": "0000000000000000",
	} {
		if status[k] != want {
			t.Errorf("%s = %q, want %q", k, status[k], want)
		}
	}
	uid := strings.Fields(status["Uid"])
	if len(uid) == 0 || uid[0] == "0" || uid[0] == strconv.Itoa(os.Getuid()) {
		t.Errorf("worker uid %v is root or the caller", uid)
	}
	if g := strings.TrimSpace(status["Groups"]); g != "" {
		t.Errorf("worker has supplementary groups %q", g)
	}
	// A root broker (daemon or standalone) on this host leaves the user
	// namespace to the worker's entry point (ipc.WorkerUsernsArg): its
	// uid, and only it, is root in there, and setgroups is denied.
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if string(cmdline) != "rex-worker\x00"+ipc.WorkerUsernsArg+"\x00" && runtime.GOARCH == "amd64" {
		t.Errorf("worker command line %q: the broker made its user namespace itself", cmdline)
	}
	for file, id := range map[string]string{"uid_map": uid[0], "gid_map": strings.Fields(status["Gid"])[0]} {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, file))
		if f := strings.Fields(string(b)); len(f) != 3 || f[0] != "0" || f[1] != id || f[2] != "1" {
			t.Errorf("%s %q, want 0 %s 1", file, b, id)
		}
	}
	if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/setgroups", pid)); strings.TrimSpace(string(b)) != "deny" {
		t.Errorf("setgroups %q, want deny", b)
	}
	// Every thread is locked down, not just the main one.
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, task := range tasks {
		ts := readStatusPath(t, fmt.Sprintf("/proc/%d/task/%s/status", pid, task.Name()))
		if ts["Seccomp"] != "2" || ts["NoNewPrivs"] != "1" || ts["CapEff"] != "0000000000000000" {
			t.Errorf("thread %s: seccomp %s nnp %s capeff %s", task.Name(), ts["Seccomp"], ts["NoNewPrivs"], ts["CapEff"])
		}
	}
	for _, ns := range []string{"user", "pid", "mnt", "net", "ipc", "uts", "cgroup"} {
		mine, _ := os.Readlink("/proc/self/ns/" + ns)
		theirs, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, ns))
		if err != nil || theirs == mine {
			t.Errorf("namespace %s not new: %s vs %s (%v)", ns, theirs, mine, err)
		}
	}
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	var kinds []string
	for _, fd := range fds {
		target, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		kinds = append(kinds, fd.Name()+"="+strings.SplitN(target, ":", 2)[0])
	}
	for _, k := range kinds {
		name, kind, _ := strings.Cut(k, "=")
		n, _ := strconv.Atoi(name)
		switch {
		case n <= 2 && kind == "pipe":
		case n > 2 && (kind == "socket" || kind == "anon_inode"):
		default:
			t.Errorf("unexpected worker fd %s", k)
		}
	}
	if root, _ := os.Readlink(fmt.Sprintf("/proc/%d/root", pid)); root != "/" {
		t.Logf("worker root as seen from outside: %s", root)
	}
	if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/root/", pid)); err == nil && len(ents) != 0 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("worker root is not empty: %v", names)
	}
	return pid, broker
}

func childNamed(ppid int, name string) int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(st)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || !strings.Contains(s[:i], "("+name) {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 2 && f[1] == strconv.Itoa(ppid) {
			return pid
		}
	}
	return 0
}

func readStatus(t *testing.T, pid int) map[string]string {
	return readStatusPath(t, fmt.Sprintf("/proc/%d/status", pid))
}

func readStatusPath(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

// The client starts a standalone run's engine with GOMAXPROCS=1 and
// REX_ENGINE_PROCS=1 added to its environment (its entry point on amd64,
// handOff elsewhere), unless the caller set GOMAXPROCS or the environment
// has more entries than the entry point copies; the worker's environment
// stays its own.
func TestClientStartsEngineOnOneProcessor(t *testing.T) {
	f := newFixture(t)
	bin := testutil.Binaries(t)
	many := make([]string, 1100)
	for i := range many {
		many[i] = fmt.Sprintf("REX_TEST_FILLER_%d=x", i)
	}
	for _, tc := range []struct {
		name   string
		env    []string
		procs  string // GOMAXPROCS in the engine's environment
		marked bool
	}{
		{"plain", nil, "GOMAXPROCS=1", true},
		{"caller's GOMAXPROCS", []string{"GOMAXPROCS=2"}, "GOMAXPROCS=2", false},
		{"too many variables", many, "", false},
	} {
		cmd := exec.Command(filepath.Join(bin, "rex-exec"), "--policy", f.policy, "--output", "json", "-")
		cmd.Stdin = strings.NewReader(`time.sleep(0.4); "hi"`)
		var env []string
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "GOMAXPROCS=") {
				env = append(env, kv)
			}
		}
		cmd.Env = append(env, tc.env...)
		var out bytes.Buffer
		cmd.Stdout = &out
		must(t, cmd.Start())
		// The engine is the same process once the client has handed over;
		// its environ is the one execve gave it.
		var engine, worker []string
		for i := 0; i < 200 && (engine == nil || worker == nil); i++ {
			if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", cmd.Process.Pid)); strings.HasSuffix(exe, "rex-exec-standalone") {
				engine = environ(cmd.Process.Pid)
				if ws := workersOf(cmd.Process.Pid); len(ws) > 0 {
					worker = environ(ws[0])
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
		must(t, cmd.Wait())
		var res ipc.Result
		if err := json.Unmarshal(out.Bytes(), &res); err != nil || res.Status != ipc.StatusSuccess || string(res.Output) != `"hi"` {
			t.Fatalf("%s: %s", tc.name, out.String())
		}
		if engine == nil || worker == nil {
			t.Fatalf("%s: never saw the engine and its worker running", tc.name)
		}
		procs, marked := "", false
		for _, kv := range engine {
			switch {
			case strings.HasPrefix(kv, "GOMAXPROCS="):
				procs = kv
			case kv == "REX_ENGINE_PROCS=1":
				marked = true
			}
		}
		if procs != tc.procs || marked != tc.marked {
			t.Errorf("%s: engine started with %q, REX_ENGINE_PROCS=1 %v; want %q, %v", tc.name, procs, marked, tc.procs, tc.marked)
		}
		if w := strings.Join(worker, " "); w != "REX_WORKER=1 GOMAXPROCS=1" {
			t.Errorf("%s: worker's environment %q", tc.name, w)
		}
	}
}

// environ is /proc/pid/environ, or nil.
func environ(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
}

// rex-exec is the client build; standalone mode re-executes it into the
// engine build, rex-exec-standalone, with the script still unread on
// stdin (every standalone test here goes through that hand-off). Without
// the engine, standalone mode fails with a result saying what to install,
// while the daemon client still works.
func TestClientHandsStandaloneToEngine(t *testing.T) {
	f := newFixture(t)
	bin := testutil.Binaries(t)
	lonely := t.TempDir()
	exe, err := os.ReadFile(filepath.Join(bin, "rex-exec"))
	must(t, err)
	must(t, os.WriteFile(filepath.Join(lonely, "rex-exec"), exe, 0o755))
	run := func(args ...string) (string, string, int) {
		cmd := exec.Command(filepath.Join(lonely, "rex-exec"), args...)
		cmd.Stdin = strings.NewReader(`"hi"`)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		_ = cmd.Run()
		return out.String(), errb.String(), cmd.ProcessState.ExitCode()
	}
	out, _, code := run("--policy", f.policy, "-")
	var res ipc.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 1 || res.Error == nil ||
		!strings.Contains(res.Error.Message, "rex-exec-standalone") {
		t.Fatalf("standalone without the engine: exit %d, %s", code, out)
	}
	if _, stderr, code := run("mcp", "--policy", f.policy); code != 1 || !strings.Contains(stderr, "rex-exec-standalone") {
		t.Fatalf("mcp --policy without the engine: exit %d, %s", code, stderr)
	}
	// With the engine beside it, the same client runs the script from stdin.
	o := rexExec(t, `"hi"`, nil, "--policy", f.policy, "--output", "json")
	wantStatus(t, o, ipc.StatusSuccess, "", 0)
	if string(o.res.Output) != `"hi"` {
		t.Fatalf("output %s", o.res.Output)
	}

	// As installed (make install): the client in bin, the engine and the
	// worker in libexec/rex. On amd64 the client's entry point hands over
	// before its Go runtime starts, so one runtime starts, the engine's
	// (GODEBUG reaches the client and the engine, never the worker).
	prefix, err := os.MkdirTemp("", "rex-prefix-") // the worker's uid must reach libexec
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(prefix) })
	must(t, os.Chmod(prefix, 0o755))
	for name, dir := range map[string]string{"rex-exec": "bin", "rex-exec-standalone": "libexec/rex", "rex-worker": "libexec/rex"} {
		b, err := os.ReadFile(filepath.Join(bin, name))
		must(t, err)
		must(t, os.MkdirAll(filepath.Join(prefix, dir), 0o755))
		must(t, os.WriteFile(filepath.Join(prefix, dir, name), b, 0o755))
	}
	for _, flags := range [][]string{{"--policy", f.policy}, {"-policy=" + f.policy}} {
		cmd := exec.Command(filepath.Join(prefix, "bin", "rex-exec"), append(flags, "--output", "json", "-")...)
		cmd.Stdin = strings.NewReader(`"hi"`)
		cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		_ = cmd.Run()
		var res ipc.Result
		if err := json.Unmarshal(out.Bytes(), &res); err != nil || res.Status != ipc.StatusSuccess || string(res.Output) != `"hi"` {
			t.Fatalf("%v as installed: %s %s", flags, out.String(), errb.String())
		}
		if n := strings.Count(errb.String(), "init runtime @"); runtime.GOARCH == "amd64" && n != 1 {
			t.Errorf("%v: %d Go runtimes started, want 1 (the engine's): the client did not hand over at its entry point", flags, n)
		}
	}
}
