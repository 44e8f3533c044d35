package worker

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rex-sh/rex/internal/testutil"
	"github.com/rex-sh/rex/ipc"
	"golang.org/x/sys/unix"
)

// staticBuildArgs build rex-worker as the Makefile does: with CGO_ENABLED=0
// (static, since its root is empty, and required by its all-threads
// lock-down) and pure-Go name services.
var staticBuildArgs = testutil.WorkerBuildArgs("netgo,osusergo")

var builds sync.Map // tags → *builtWorker

type builtWorker struct {
	once sync.Once
	path string
	err  error
}

// evilWorker builds rex-worker with the rexevil tag: the release sandbox
// bring-up, with a probe runner instead of Risor.
func evilWorker(t *testing.T) string { return buildWorker(t, "rexevil") }

// buildWorker builds rex-worker statically with extra build tags once per
// test process, in a directory any uid can traverse: the worker runs as W.
func buildWorker(t *testing.T, tags string) string {
	t.Helper()
	v, _ := builds.LoadOrStore(tags, &builtWorker{})
	b := v.(*builtWorker)
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "rex-worker-test-")
		if err == nil {
			err = os.Chmod(dir, 0o755)
		}
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, "rex-worker")
		args := append([]string{"build", "-o", b.path}, staticBuildArgs...)
		if tags != "" {
			args[len(args)-1] = tags + "," + args[len(args)-1]
		}
		cmd := exec.Command("go", append(args, "./cmd/rex-worker")...)
		cmd.Dir = testutil.RepoRoot(t)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("%v: %s", err, out)
		}
	})
	if b.err != nil {
		t.Fatalf("build rex-worker: %v", b.err)
	}
	return b.path
}

func TestMain(m *testing.M) {
	if os.Getenv(landlockHelperEnv) != "" {
		if err := landlockHelper(); err != nil {
			fmt.Fprintln(os.Stderr, "landlock helper:", err)
			os.Exit(1)
		}
		fmt.Println("landlock helper: ok")
		os.Exit(0)
	}
	code := m.Run()
	builds.Range(func(_, v any) bool {
		if p := v.(*builtWorker).path; p != "" {
			os.RemoveAll(filepath.Dir(p))
		}
		return true
	})
	os.Exit(code)
}

// workerUID is W: an unused uid when the test is root (as a root broker
// would pick), else the caller's own uid (standalone mode).
func workerUID(t *testing.T) int {
	if os.Geteuid() == 0 {
		return 61234
	}
	testutil.RequireUserns(t)
	return os.Getuid()
}

type workerProc struct {
	cmd    *exec.Cmd
	stdin  *os.File
	stdout *bufio.Reader
	stderr *bufio.Reader
	broker *os.File
	uid    int
}

// startWorker starts the evil rex-worker exactly as the broker does
// (DESIGN §5, the spawn contract) and sends it script as the Start frame.
func startWorker(t *testing.T, script string) *workerProc {
	t.Helper()
	return startBinary(t, evilWorker(t), script)
}

func startBinary(t *testing.T, bin, script string) *workerProc {
	t.Helper()
	return startBinaryWith(t, bin, &ipc.Start{Version: ipc.Version, RunID: "test", Script: []byte(script)})
}

// startBinaryWith is startBinary with start as the Start frame.
func startBinaryWith(t *testing.T, bin string, start *ipc.Start) *workerProc {
	t.Helper()
	uid := workerUID(t)
	brokerEnd, workerEnd, err := ipc.SocketPair()
	if err != nil {
		t.Fatal(err)
	}
	cmd := &exec.Cmd{Path: bin, Args: []string{"rex-worker"}, Env: []string{"REX_WORKER=1"}}
	cmd.ExtraFiles = []*os.File{workerEnd}
	inR, inW, _ := os.Pipe()
	outR, outW, _ := os.Pipe()
	errR, errW, _ := os.Pipe()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS | syscall.CLONE_NEWPID |
			syscall.CLONE_NEWNET | syscall.CLONE_NEWIPC | syscall.CLONE_NEWUTS | syscall.CLONE_NEWCGROUP,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: uid, Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: uid, Size: 1}},
		Credential:  &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true},
		Setsid:      true,
		Pdeathsig:   syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start worker: %v", err)
	}
	for _, f := range []*os.File{workerEnd, inR, outW, errW} {
		f.Close()
	}
	w := &workerProc{cmd: cmd, stdin: inW, stdout: bufio.NewReader(outR), stderr: bufio.NewReader(errR), broker: brokerEnd, uid: uid}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		inW.Close()
		outR.Close()
		errR.Close()
		brokerEnd.Close()
	})
	if err := ipc.WriteFrame(inW, ipc.MsgStart, start); err != nil {
		t.Fatalf("write start: %v", err)
	}
	return w
}

// waitPaused reads stderr until the evil worker says it paused, and returns
// the lines before.
func (w *workerProc) waitPaused(t *testing.T) []string {
	t.Helper()
	type res struct {
		lines []string
		err   error
	}
	ch := make(chan res, 1)
	go func() {
		var lines []string
		for {
			l, err := w.stderr.ReadString('\n')
			if err != nil {
				ch <- res{lines, err}
				return
			}
			if l == "rex-worker: paused\n" {
				ch <- res{lines, nil}
				return
			}
			lines = append(lines, strings.TrimSpace(l))
		}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			w.cmd.Wait()
			t.Fatalf("worker did not pause (%v): exit %v; stderr: %q", r.err, w.cmd.ProcessState, r.lines)
		}
		return r.lines
	case <-time.After(20 * time.Second):
		t.Fatal("worker did not pause within 20s")
	}
	return nil
}

// finish closes stdin, reads the result and the exit status.
func (w *workerProc) finish(t *testing.T) (*ipc.WorkerResult, syscall.WaitStatus) {
	t.Helper()
	w.stdin.Close()
	var res ipc.WorkerResult
	rerr := ipc.ReadFrameAs(w.stdout, ipc.MsgWorkerResult, &res)
	// As the broker does: hang up, and the worker that waits for it exits.
	w.broker.Close()
	w.cmd.Wait()
	ws := w.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if rerr != nil {
		return nil, ws
	}
	return &res, ws
}

type report struct {
	Hostname   string   `json:"hostname"`
	Domainname string   `json:"domainname"`
	UID        int      `json:"uid"`
	Cwd        string   `json:"cwd"`
	OpenErrno  int      `json:"open_errno"`
	SockErrno  int      `json:"socket_errno"`
	OpenFDs    []int    `json:"open_fds"`
	Env        []string `json:"env"`
	Raw        int      `json:"raw_errno"`
}

// TestWorkerPosture is convention 11: the sandbox is checked from outside,
// as the broker sees it, on a real worker.
func TestWorkerPosture(t *testing.T) {
	w := startWorker(t, "pause")
	diag := w.waitPaused(t)
	pid := w.cmd.Process.Pid

	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	if err != nil || len(tasks) == 0 {
		t.Fatalf("no tasks: %v", err)
	}
	wantUID := fmt.Sprintf("\t%d\t%d\t%d\t%d\n", w.uid, w.uid, w.uid, w.uid)
	for _, p := range tasks {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		st := string(b)
		for _, want := range []string{
			"\nSeccomp:\t2\n", "\nNoNewPrivs:\t1\n",
			"\nCapInh:\t0000000000000000\n", "\nCapPrm:\t0000000000000000\n",
			"\nCapEff:\t0000000000000000\n", "\nCapBnd:\t0000000000000000\n",
			"\nCapAmb:\t0000000000000000\n",
			"\nUid:" + wantUID, "\nGid:" + wantUID,
		} {
			if !strings.Contains(st, want) {
				t.Errorf("%s lacks %q", p, strings.TrimSpace(want))
			}
		}
	}

	for _, ns := range []string{"user", "mnt", "pid", "net", "ipc", "uts", "cgroup"} {
		own, err1 := os.Readlink("/proc/self/ns/" + ns)
		theirs, err2 := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, ns))
		if err1 != nil || err2 != nil {
			t.Fatalf("ns %s: %v %v", ns, err1, err2)
		}
		if own == theirs {
			t.Errorf("worker shares the %s namespace (%s)", ns, own)
		}
	}

	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(fdDir)
	if err != nil {
		t.Fatal(err)
	}
	sockets := 0
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join(fdDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case e.Name() == "0" || e.Name() == "1" || e.Name() == "2":
			if !strings.HasPrefix(target, "pipe:") {
				t.Errorf("fd %s is %s, want a pipe", e.Name(), target)
			}
		case strings.HasPrefix(target, "socket:"):
			sockets++
		case target == "anon_inode:[eventpoll]" || target == "anon_inode:[eventfd]":
			// Go's network poller, created for the broker socket.
		default:
			t.Errorf("unexpected fd %s -> %s", e.Name(), target)
		}
	}
	if sockets != 1 {
		t.Errorf("%d sockets open, want exactly the broker's", sockets)
	}

	// The worker's root is the empty tmpfs.
	root, err := os.ReadDir(fmt.Sprintf("/proc/%d/root", pid))
	if err != nil {
		t.Fatalf("read worker root: %v", err)
	}
	if len(root) != 0 {
		t.Errorf("worker root not empty: %v", root)
	}

	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "Vm") {
				t.Log(l)
			}
		}
	}
	limits, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Max core file size        0                    0",
		fmt.Sprintf("Max open files            %-20d %-20d", maxFiles, maxFiles),
		fmt.Sprintf("Max file size             %-20d %-20d", maxFileSize, maxFileSize),
		fmt.Sprintf("Max address space         %-20d %-20d", maxAddrSpace, maxAddrSpace),
	} {
		if !strings.Contains(string(limits), want) {
			t.Errorf("limits lack %q:\n%s", want, limits)
		}
	}

	res, ws := w.finish(t)
	if ws.ExitStatus() != 0 || res == nil {
		t.Fatalf("worker exit %v, result %v", w.cmd.ProcessState, res)
	}
	var r report
	if err := json.Unmarshal([]byte(res.Stdout), &r); err != nil {
		t.Fatalf("report %q: %v", res.Stdout, err)
	}
	if r.Hostname != "rex" || r.Domainname != "(none)" || r.UID != 0 || r.Cwd != "/" {
		t.Errorf("inside view: %+v", r)
	}
	if r.OpenErrno != int(unix.EACCES) || r.SockErrno != int(unix.EPERM) {
		t.Errorf("open errno %d, socket errno %d; want EACCES, EPERM", r.OpenErrno, r.SockErrno)
	}
	if len(r.Env) != 1 || r.Env[0] != "REX_WORKER=1" {
		t.Errorf("environment %q", r.Env)
	}
	landlock := true
	if _, err := LandlockABI(); err != nil {
		landlock = false
	}
	for _, l := range diag {
		if strings.Contains(l, "landlock unavailable") && landlock {
			t.Errorf("worker says %q on a kernel with Landlock", l)
		}
	}
}

// TestWorkerRawSyscalls runs raw syscalls inside the real sandbox, one
// worker each, as the SECURITY-TESTS evil-worker harness does.
func TestWorkerRawSyscalls(t *testing.T) {
	cases := []struct {
		name   string
		script string
		kill   bool
		errno  unix.Errno
	}{
		{"mount", fmt.Sprintf("raw %d", unix.SYS_MOUNT), true, 0},
		{"execve", fmt.Sprintf("raw %d", unix.SYS_EXECVE), true, 0},
		{"unshare", fmt.Sprintf("raw %d %d", unix.SYS_UNSHARE, unix.CLONE_NEWUSER), true, 0},
		{"ptrace", fmt.Sprintf("raw %d %d 1", unix.SYS_PTRACE, unix.PTRACE_ATTACH), true, 0},
		{"io_uring_setup", fmt.Sprintf("raw %d 1", unix.SYS_IO_URING_SETUP), true, 0},
		{"clone3", fmt.Sprintf("raw %d 0 88", unix.SYS_CLONE3), false, unix.ENOSYS},
		{"openat", fmt.Sprintf("raw %d 0 0", unix.SYS_OPENAT), false, unix.EACCES},
		{"getpid", fmt.Sprintf("raw %d", unix.SYS_GETPID), false, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := startWorker(t, c.script)
			res, ws := w.finish(t)
			if c.kill {
				if !ws.Signaled() || ws.Signal() != syscall.SIGSYS {
					t.Fatalf("exit %v, want death by SIGSYS", w.cmd.ProcessState)
				}
				return
			}
			if ws.ExitStatus() != 0 || res == nil {
				t.Fatalf("exit %v, result %v", w.cmd.ProcessState, res)
			}
			var r report
			if err := json.Unmarshal([]byte(res.Stdout), &r); err != nil {
				t.Fatal(err)
			}
			if unix.Errno(r.Raw) != c.errno {
				t.Fatalf("errno %d, want %d", r.Raw, int(c.errno))
			}
		})
	}
}

// TestWorkerRefusesHandStart: run outside the broker's spawn, rex-worker
// touches nothing; the retired second stage's argument starts nothing.
func TestWorkerRefusesHandStart(t *testing.T) {
	bin := evilWorker(t)
	for _, c := range []struct {
		args []string
		env  []string
		exit int
	}{
		{[]string{"rex-worker"}, nil, ExitUsage},
		{[]string{"rex-worker"}, []string{"REX_WORKER=1"}, ExitUsage}, // not pid 1
		{[]string{"rex-worker", "stage2"}, []string{"REX_WORKER=1"}, ExitUsage},
		{[]string{"rex-worker", ipc.WorkerUsernsArg, "x"}, []string{"REX_WORKER=1"}, ExitUsage},
		// The entry point makes the user namespace, then the worker finds
		// it is not pid 1.
		{[]string{"rex-worker", ipc.WorkerUsernsArg}, []string{"REX_WORKER=1"}, ExitUsage},
	} {
		cmd := &exec.Cmd{Path: bin, Args: c.args, Env: c.env}
		out, _ := cmd.CombinedOutput()
		if got := cmd.ProcessState.ExitCode(); got != c.exit {
			t.Errorf("%q %q: exit %d, want %d; output %s", c.args, c.env, got, c.exit, out)
		}
	}
}

// When the entry point cannot make the user namespace it was asked for,
// the worker stops there, naming the step and the error: in a chroot the
// kernel refuses unshare(CLONE_NEWUSER).
func TestWorkerStopsWithoutItsUserns(t *testing.T) {
	testutil.RequireRoot(t)
	if runtime.GOARCH != "amd64" {
		testutil.Skip(t, "the worker makes its own user namespace on amd64 only")
	}
	src, err := os.ReadFile(evilWorker(t))
	if err != nil {
		t.Fatal(err)
	}
	jail := t.TempDir()
	if err := os.WriteFile(filepath.Join(jail, "rex-worker"), src, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := &exec.Cmd{Path: "/rex-worker", Args: []string{"rex-worker", ipc.WorkerUsernsArg}, Env: []string{"REX_WORKER=1"},
		SysProcAttr: &syscall.SysProcAttr{Chroot: jail}}
	out, _ := cmd.CombinedOutput()
	want := "rex-worker: user namespace: unshare(CLONE_NEWUSER|CLONE_NEWNS|CLONE_NEWUTS): operation not permitted"
	if got := cmd.ProcessState.ExitCode(); got != ExitUserns || strings.TrimSpace(string(out)) != want {
		t.Errorf("exit %d, output %q; want %d, %q", got, out, ExitUserns, want)
	}
}

// TestReleaseWorkerRunsRisor runs the release rex-worker (Risor, no test
// tag) on a script that allocates and collects garbage, under the real
// seccomp filter and rlimits: a syscall missing from the profile or a limit
// too tight for the Go runtime kills it here.
func TestReleaseWorkerRunsRisor(t *testing.T) {
	const script = `
parts := []
for i := 0; i < 20000; i++ {
	parts.append(strings.repeat("x", 1000 + i % 7))
}
s := strings.join(parts, "")
print("built", len(s))
len(s) > 20000000
`
	w := startBinary(t, buildWorker(t, ""), script)
	res, ws := w.finish(t)
	if ws.ExitStatus() != 0 || res == nil {
		rest, _ := io.ReadAll(w.stderr)
		t.Fatalf("exit %v, result %+v; stderr: %s", w.cmd.ProcessState, res, rest)
	}
	if res.ErrType != "" || string(res.Output) != "true" || !strings.HasPrefix(res.Stdout, "built ") {
		t.Fatalf("result %+v (output %s)", res, res.Output)
	}
}

// A worker told ipc.Start.ExitAfterResult exits once its result is
// written, while its broker still holds the socket; without it, it waits
// for the hang-up.
func TestWorkerExitAfterResult(t *testing.T) {
	for _, exit := range []bool{true, false} {
		w := startBinaryWith(t, buildWorker(t, ""), &ipc.Start{Version: ipc.Version, RunID: "test", Script: []byte("1"), ExitAfterResult: exit})
		w.stdin.Close()
		var res ipc.WorkerResult
		if err := ipc.ReadFrameAs(w.stdout, ipc.MsgWorkerResult, &res); err != nil || string(res.Output) != "1" {
			t.Fatalf("exit %v: result %+v, %v", exit, res, err)
		}
		done := make(chan struct{})
		go func() { _ = w.cmd.Wait(); close(done) }()
		select {
		case <-done:
			if !exit {
				t.Error("the worker exited before its broker hung up")
			}
		case <-time.After(time.Second):
			if exit {
				t.Error("the worker told to exit after its result still runs a second later")
			}
			w.broker.Close()
			<-done
		}
	}
}
