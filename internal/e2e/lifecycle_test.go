package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rex-sh/rex/internal/testutil"
	"github.com/rex-sh/rex/ipc"
)

// TestMain lets this test binary act as the attacking caller of R05: run
// as the user who started a run, it attacks that run's worker.
func TestMain(m *testing.M) {
	if os.Getenv("REX_E2E_SLEEP") == "1" { // a process with secrets in its argv
		time.Sleep(30 * time.Second)
		os.Exit(0)
	}
	if pid := os.Getenv("REX_E2E_ATTACK_WORKER"); pid != "" {
		n, _ := strconv.Atoi(pid)
		fmt.Print(attackWorker(n))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// attackWorker tries every way a process of the caller's uid could reach
// into a worker and reports each errno as "name=errno;".
func attackWorker(pid int) string {
	var out strings.Builder
	report := func(name string, err error) {
		if err == nil {
			fmt.Fprintf(&out, "%s=OK;", name)
			return
		}
		fmt.Fprintf(&out, "%s=%v;", name, err)
	}
	_, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_ATTACH, uintptr(pid), 0, 0, 0, 0)
	report("ptrace", errOrNil(e))
	_, _, e = unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_SEIZE, uintptr(pid), 0, 0, 0, 0)
	report("seize", errOrNil(e))
	var buf [8]byte
	local := []unix.Iovec{{Base: &buf[0], Len: 8}}
	remote := []unix.RemoteIovec{{Base: 0x400000, Len: 8}}
	_, err := unix.ProcessVMReadv(pid, local, remote, 0)
	report("process_vm_readv", err)
	f, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err == nil {
		f.Close()
	}
	report("proc_mem", err)
	_, err = os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	report("proc_environ", err)
	pfd, err := unix.PidfdOpen(pid, 0)
	if err == nil {
		_, err = unix.PidfdGetfd(pfd, 3, 0)
		unix.Close(pfd)
	}
	report("pidfd_getfd", err)
	report("kill", unix.Kill(pid, syscall.Signal(0)))
	return out.String()
}

func errOrNil(e syscall.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// TestR05_CallerCannotReachItsWorker: the user who asked for a run cannot
// ptrace, read the memory of, steal descriptors from or signal the worker
// running its script: the worker runs under another uid and is not dumpable.
func TestR05_CallerCannotReachItsWorker(t *testing.T) {
	f := newFixture(t)
	b := startBroker(t, policyDir(t, f), nil)
	caller := addUser(t, "rexr05"+randSuffix())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go rexExecAs(ctx, t, &caller, b.socket, `for {}`, "--timeout", "20s")
	ws := waitWorkers(t, b.cmd.Process.Pid, 1)
	self, err := os.Executable()
	must(t, err)
	// The test binary must be reachable by the caller's uid (t.TempDir's
	// parent is 0700).
	dir, err := os.MkdirTemp("", "rex-r05-")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	must(t, os.Chmod(dir, 0o755))
	exe := filepath.Join(dir, "attack.test")
	must(t, copyFile(self, exe))
	cmd := exec.Command(exe)
	cmd.Env = []string{"REX_E2E_ATTACK_WORKER=" + strconv.Itoa(ws[0])}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: caller.credential(t)}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("attacker: %v: %s", err, out)
	}
	report := string(out)
	t.Logf("caller %s (uid %d) against worker %d: %s", caller.name, caller.uid, ws[0], report)
	for _, probe := range []string{"ptrace", "seize", "process_vm_readv", "proc_mem", "proc_environ", "pidfd_getfd", "kill"} {
		if !strings.Contains(report, probe+"=") || strings.Contains(report, probe+"=OK;") {
			t.Errorf("%s against the worker was not refused: %s", probe, report)
		}
	}
	testutil.Hostile(t, "R05", "caller-uid ptrace, process_vm_readv, /proc/<worker>/mem, pidfd_getfd, kill on its own worker",
		"EPERM/EACCES (other uid, non-dumpable)", report)
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o755)
}

// TestA02_ConfusedDeputy: rex-exec names a script, args file and policy
// that are symlinks to root-only files or a FIFO; run as an unprivileged
// user, nothing of them leaks, because rex-exec reads them with the user's
// own rights and the broker only ever receives bytes.
func TestA02_ConfusedDeputy(t *testing.T) {
	f := newFixture(t)
	b := startBroker(t, policyDir(t, f), nil)
	caller := addUser(t, "rexa02"+randSuffix())
	dir, err := os.MkdirTemp("", "rex-a02-")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	must(t, os.Chmod(dir, 0o755))
	secret := filepath.Join(dir, "root-only")
	must(t, os.WriteFile(secret, []byte("ROOTSECRET"), 0o600))
	link := filepath.Join(dir, "script.risor")
	must(t, os.Symlink(secret, link))
	fifo := filepath.Join(dir, "fifo")
	must(t, unix.Mkfifo(fifo, 0o666))
	bin := testutil.Binaries(t)
	run := func(args ...string) (string, int) {
		cmd := exec.Command(filepath.Join(bin, "rex-exec"), append([]string{"--socket", b.socket, "--output", "json"}, args...)...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: caller.credential(t)}
		cmd.Stdin = strings.NewReader("")
		done := make(chan struct{})
		var out []byte
		var code int
		go func() {
			defer close(done)
			out, _ = cmd.Output()
			code = cmd.ProcessState.ExitCode()
		}()
		select {
		case <-done:
		case <-time.After(time.Second):
			_ = cmd.Process.Kill()
			<-done
			return "timeout", -1
		}
		return string(out), code
	}
	var observed []string
	for name, args := range map[string][]string{
		"script symlink to a root-only file": {link},
		"args file symlink":                  {"--args-file", link, "-"},
		"policy is ignored in daemon mode":   {"--args-file", secret, "-"},
	} {
		out, code := run(args...)
		if strings.Contains(out, "ROOTSECRET") {
			t.Errorf("%s: secret leaked: %s", name, out)
		}
		if code != 2 {
			t.Errorf("%s: exit %d, want 2 (validation): %s", name, code, out)
		}
		observed = append(observed, fmt.Sprintf("%s: exit %d", name, code))
	}
	// A FIFO as the script: rex-exec (not the broker) blocks on it; the
	// broker never opened anything, so it is simply a client that waits.
	if out, _ := run(fifo); strings.Contains(out, "ROOTSECRET") {
		t.Errorf("fifo: %s", out)
	}
	if c := strings.Count(readFileString(b.audit), `"event":"run_start"`); c != 0 {
		t.Errorf("%d runs started from unreadable inputs", c)
	}
	b.alive(t)
	testutil.Hostile(t, "A02", "script/args/policy paths that are symlinks to root-only files, or FIFOs",
		"nothing leaks: content arrives as bytes read by the caller", strings.Join(observed, "; "))
}

func readFileString(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

// TestR01_InfiniteLoops: endless loops end at the wall-clock limit, the
// worker is killed, and the broker keeps serving.
func TestR01_InfiniteLoops(t *testing.T) {
	f := newFixture(t)
	b := startBroker(t, policyDir(t, f), nil)
	var observed []string
	for _, src := range []string{`for {}`, `f := func() { for { x := [1, 2, 3]; x.append(4) } }; f()`, `for i := 0; i >= 0; i = (i + 1) % 1000 { "x" + "y" }`} {
		start := time.Now()
		o := rexExecAs(context.Background(), t, nil, b.socket, src, "--timeout", "1s")
		wantStatus(t, o, ipc.StatusError, ipc.ErrTimeout, 5)
		if took := time.Since(start); took > 4*time.Second {
			t.Errorf("%q: timeout of 1s took %v", src, took)
		}
		observed = append(observed, fmt.Sprintf("%s after %v", o.res.Error.ErrorType, o.took.Round(10*time.Millisecond)))
	}
	if ws := workersOf(b.cmd.Process.Pid); len(ws) != 0 {
		t.Errorf("workers left: %v", ws)
	}
	o := rexExecAs(context.Background(), t, nil, b.socket, `1 + 1`)
	wantStatus(t, o, ipc.StatusSuccess, "", 0)
	testutil.Hostile(t, "R01", "Risor infinite loops (bare, in a function, allocating)", "timeout, worker killed, broker healthy", strings.Join(observed, "; "))
}

// TestR02_MemoryBombs: string doubling, list and map growth end in the
// worker's memory limit (its cgroup), not in the broker.
func TestR02_MemoryBombs(t *testing.T) {
	f := newFixture(t)
	b := startBroker(t, policyDir(t, f), nil, "--memory-mb", "128")
	var observed []string
	for _, src := range []string{
		`s := "x"; for { s = s + s }`,
		`l := []; for { l.append("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx") }`,
		`m := {}; i := 0; for { m[string(i)] = [i, i, i, i]; i++ }`,
	} {
		o := rexExecAs(context.Background(), t, nil, b.socket, src, "--timeout", "30s")
		wantStatus(t, o, ipc.StatusError, ipc.ErrResourceLimit, 5)
		observed = append(observed, o.res.Error.ErrorType)
	}
	b.alive(t)
	if rss := readStatus(t, b.cmd.Process.Pid)["VmRSS"]; rss == "" {
		t.Error("cannot read the broker's RSS")
	} else if kb, _ := strconv.Atoi(strings.Fields(rss)[0]); kb > 64<<10 {
		t.Errorf("broker RSS %s after memory bombs", rss)
	}
	testutil.Hostile(t, "R02", "memory bombs: string doubling, list append, map growth", "worker OOM-killed in its cgroup, resource-limit error, broker unaffected", strings.Join(observed, "; "))
}

// alive fails t unless the broker process still runs and answers a run.
func (b *broker) alive(t *testing.T) {
	t.Helper()
	if err := b.cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("broker died: %v\n%s", err, b.log.String())
	}
	o := rexExecAs(context.Background(), t, nil, b.socket, `"still serving"`)
	wantStatus(t, o, ipc.StatusSuccess, "", 0)
}

// A standalone run as root leaves no cgroup behind: rex-exec waits for the
// run's cleanup before it exits, as nothing outlives it to do it.
func TestStandaloneLeavesNoCgroup(t *testing.T) {
	testutil.RequireRoot(t)
	f := newFixture(t)
	o := standalone(t, f, `"done"`)
	wantStatus(t, o, ipc.StatusSuccess, "", 0)
	if left := existing(runCgroupDirs(o.res.RunID)); len(left) > 0 {
		t.Fatalf("cgroups left by standalone run %s: %v", o.res.RunID, left)
	}
}

// Ctrl-C on a standalone rex-exec cancels its run: it kills the worker,
// removes the run's cgroup, and prints the cancelled result, all before it
// exits. (The engine catches SIGINT and SIGTERM from before it hands the
// worker its script: see standalone in cmd/rex-exec/engine.go.)
func TestStandaloneInterrupt(t *testing.T) {
	testutil.RequireRoot(t)
	f := newFixture(t)
	bin := testutil.Binaries(t)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		cmd := exec.Command(filepath.Join(bin, "rex-exec"), "--policy", f.policy, "--timeout", "20s", "--output", "json", "-")
		cmd.Stdin = strings.NewReader(`for {}`)
		var out strings.Builder
		cmd.Stdout = &out
		must(t, cmd.Start())
		ws := waitWorkers(t, cmd.Process.Pid, 1)
		// The worker locks down before the engine has finished its own
		// start-up (and set up its signals); the script, a busy loop, runs
		// until the signal.
		time.Sleep(300 * time.Millisecond)
		sent := time.Now()
		must(t, cmd.Process.Signal(sig))
		err := cmd.Wait()
		if took := time.Since(sent); took > 2*time.Second {
			t.Errorf("%v: rex-exec took %v to end", sig, took)
		}
		if st := cmd.ProcessState.Sys().(syscall.WaitStatus); st.Signaled() {
			t.Fatalf("%v: rex-exec died of it (%v) instead of cancelling its run", sig, err)
		}
		var res ipc.Result
		if err := json.Unmarshal([]byte(out.String()), &res); err != nil {
			t.Fatalf("%v: no JSON result: %v: %q", sig, err, out.String())
		}
		if res.Status != ipc.StatusError || res.Error == nil || res.Error.ErrorType != ipc.ErrCommunication ||
			!strings.Contains(res.Error.Message, "cancelled") || cmd.ProcessState.ExitCode() != ipc.ExitCode(&res) {
			t.Errorf("%v: exit %d, result %s", sig, cmd.ProcessState.ExitCode(), out.String())
		}
		if _, _, state := procStat(ws[0]); state != "" {
			t.Errorf("%v: worker %d still there (%s) after rex-exec exited", sig, ws[0], state)
		}
		if left := existing(runCgroupDirs(res.RunID)); len(left) > 0 {
			t.Errorf("%v: cgroups left: %v", sig, left)
		}
	}
}

// TestN04_CommandLineSecretsRedacted: a listed process's command line
// comes back with its secrets redacted.
func TestN04_CommandLineSecretsRedacted(t *testing.T) {
	requireSandbox(t)
	self, err := os.Executable()
	must(t, err)
	victim := exec.Command(self, "--password=hunter2", "--token", "tok-abc", "https://bob:s3cret@example.com/")
	victim.Env = []string{"REX_E2E_SLEEP=1"}
	must(t, victim.Start())
	defer func() { _ = victim.Process.Kill(); _ = victim.Wait() }()
	pol := filepath.Join(t.TempDir(), "p.cedar")
	must(t, os.WriteFile(pol, []byte(fmt.Sprintf(`@id("victim")
permit(principal, action == process_system::Action::"list", resource) when { resource.pid == %d };`, victim.Process.Pid)), 0o644))
	var o outcome
	for i := 0; i < 50; i++ { // until the victim has exec'd
		o = rexExec(t, `ps := proc.list(); len(ps) == 1 ? ps[0].command : ""`, nil, "--policy", pol, "--output", "json")
		if strings.Contains(string(o.res.Output), "password") {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	wantStatus(t, o, ipc.StatusSuccess, "", 0)
	out := string(o.res.Output)
	for _, secret := range []string{"hunter2", "tok-abc", "s3cret"} {
		if strings.Contains(o.raw, secret) {
			t.Errorf("secret %q in the listed command line: %s", secret, out)
		}
	}
	if !strings.Contains(out, "--password=[REDACTED]") || !strings.Contains(out, "--token [REDACTED]") || !strings.Contains(out, "bob:[REDACTED]@") {
		t.Errorf("command line not redacted as expected: %s", out)
	}
}
