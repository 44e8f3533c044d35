package seccomp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/rex-sh/rex/ipc"
	"golang.org/x/sys/unix"
)

// The tests run each probe in a child: this package's tests built without
// cgo, as rex-worker is (helperBinary), run with helperEnv set, which
// installs the real filter and then makes one call. A blocked call either
// returns the profile's errno (printed on stdout) or kills the child with
// SIGSYS, which only a parent can observe. Without cgo the child's threads
// are the Go runtime's own, as in the worker: a cgo child would need glibc's
// thread start, which the profile does not allow.
const helperEnv = "REX_SECCOMP_HELPER"

func TestMain(m *testing.M) {
	if probe := os.Getenv(helperEnv); probe != "" {
		os.Exit(helper(probe))
	}
	code := m.Run()
	if helperBin.dir != "" {
		os.RemoveAll(helperBin.dir)
	}
	os.Exit(code)
}

var helperBin struct {
	once      sync.Once
	dir, path string
	err       error
}

// helperBinary builds this package's tests once with CGO_ENABLED=0 (the
// files that need libseccomp are cgo-only and drop out) for the children.
func helperBinary(t *testing.T) string {
	t.Helper()
	helperBin.once.Do(func() {
		helperBin.dir, helperBin.err = os.MkdirTemp("", "rex-seccomp-helper-")
		if helperBin.err != nil {
			return
		}
		helperBin.path = filepath.Join(helperBin.dir, "seccomp.test")
		cmd := exec.Command("go", "test", "-c", "-o", helperBin.path, "-tags", "netgo,osusergo", ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			helperBin.err = fmt.Errorf("%v: %s", err, out)
		}
	})
	if helperBin.err != nil {
		t.Fatalf("build the seccomp helper: %v", helperBin.err)
	}
	return helperBin.path
}

// x32SyscallBit marks a syscall number as the x32 ABI on x86_64.
const x32SyscallBit = 0x40000000

// probes make one call after the filter is installed and return its errno
// (0 on success). Pointers are bogus on purpose where the call is expected
// to be blocked: if the filter let it through, the kernel would still fail
// it harmlessly with EFAULT/EBADF/EINVAL, which the test reports as a leak.
var probes = map[string]func() syscall.Errno{
	"openat": func() syscall.Errno {
		_, err := os.Open("/etc/passwd")
		return errnoOf(err)
	},
	"stat": func() syscall.Errno {
		_, err := os.Stat("/")
		return errnoOf(err)
	},
	"lstat": func() syscall.Errno {
		_, err := os.Lstat("/proc/1/root")
		return errnoOf(err)
	},
	"statx": func() syscall.Errno {
		var st unix.Statx_t
		return errnoOf(unix.Statx(unix.AT_FDCWD, "/", 0, unix.STATX_ALL, &st))
	},
	"access": func() syscall.Errno { return errnoOf(unix.Access("/etc/passwd", unix.R_OK)) },
	"openat2": func() syscall.Errno {
		_, err := unix.Openat2(unix.AT_FDCWD, "/etc/passwd", &unix.OpenHow{Flags: unix.O_RDONLY})
		return errnoOf(err)
	},
	"socket-inet": func() syscall.Errno {
		_, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
		return errnoOf(err)
	},
	"socket-unix": func() syscall.Errno {
		_, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
		return errnoOf(err)
	},
	"socket-netlink": func() syscall.Errno {
		_, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW, 0)
		return errnoOf(err)
	},
	"clone3": func() syscall.Errno {
		_, _, e := unix.RawSyscall(unix.SYS_CLONE3, 0, 88, 0)
		return e
	},
	"ioctl-tiocsti": func() syscall.Errno {
		c := byte('x')
		_, _, e := unix.Syscall(unix.SYS_IOCTL, 0, unix.TIOCSTI, uintptr(unsafe.Pointer(&c)))
		return e
	},
	"ioctl-tiocsti-high": func() syscall.Errno {
		c := byte('x')
		_, _, e := unix.Syscall(unix.SYS_IOCTL, 0, 0x123<<32|unix.TIOCSTI, uintptr(unsafe.Pointer(&c)))
		return e
	},

	// Expected to kill.
	"mount": func() syscall.Errno {
		return errnoOf(unix.Mount("none", "/", "tmpfs", 0, ""))
	},
	"umount2":    rawKill(unix.SYS_UMOUNT2, 0, 0, 0),
	"pivot_root": rawKill(unix.SYS_PIVOT_ROOT, 0, 0, 0),
	"chroot":     rawKill(unix.SYS_CHROOT, 0, 0, 0),
	"bpf":        rawKill(unix.SYS_BPF, 0, 0, 0),
	"ptrace":     rawKill(unix.SYS_PTRACE, unix.PTRACE_ATTACH, 1, 0),
	"execve": func() syscall.Errno {
		return errnoOf(syscall.Exec("/proc/self/exe", []string{"x"}, nil))
	},
	"execveat":          rawKill(unix.SYS_EXECVEAT, 0, 0, 0),
	"memfd_create":      rawKill(unix.SYS_MEMFD_CREATE, 0, 0, 0),
	"io_uring_setup":    rawKill(unix.SYS_IO_URING_SETUP, 1, 0, 0),
	"unshare":           rawKill(unix.SYS_UNSHARE, unix.CLONE_NEWUSER|unix.CLONE_NEWNS, 0, 0),
	"setns":             rawKill(unix.SYS_SETNS, 0, 0, 0),
	"perf_event_open":   rawKill(unix.SYS_PERF_EVENT_OPEN, 0, 0, 0),
	"userfaultfd":       rawKill(unix.SYS_USERFAULTFD, 0, 0, 0),
	"keyctl":            rawKill(unix.SYS_KEYCTL, 0, 0, 0),
	"add_key":           rawKill(unix.SYS_ADD_KEY, 0, 0, 0),
	"open_by_handle_at": rawKill(unix.SYS_OPEN_BY_HANDLE_AT, 0, 0, 0),
	"kexec_load":        rawKill(unix.SYS_KEXEC_LOAD, 0, 0, 0),
	"init_module":       rawKill(unix.SYS_INIT_MODULE, 0, 0, 0),
	"personality":       rawKill(unix.SYS_PERSONALITY, 0x0400000, 0, 0),
	"modify_ldt":        rawKill(unix.SYS_MODIFY_LDT, 0, 0, 0),
	"fsopen":            rawKill(unix.SYS_FSOPEN, 0, 0, 0),
	"open_tree":         rawKill(unix.SYS_OPEN_TREE, 0, 0, 0),
	"move_mount":        rawKill(unix.SYS_MOVE_MOUNT, 0, 0, 0),
	"mount_setattr":     rawKill(unix.SYS_MOUNT_SETATTR, 0, 0, 0),
	"process_vm_readv":  rawKill(unix.SYS_PROCESS_VM_READV, 1, 0, 0),
	"pidfd_open":        rawKill(unix.SYS_PIDFD_OPEN, 1, 0, 0),
	"pidfd_getfd":       rawKill(unix.SYS_PIDFD_GETFD, 0, 0, 0),
	"fchmod":            rawKill(unix.SYS_FCHMOD, 1, 0o777, 0),
	"prctl-set":         rawKill(unix.SYS_PRCTL, unix.PR_SET_DUMPABLE, 1, 0),
	"kill-other":        rawKill(unix.SYS_KILL, 1, 0, 0),
	"tgkill-other":      rawKill(unix.SYS_TGKILL, 1, 1, 0),
	"fork":              rawKill(unix.SYS_CLONE, uintptr(unix.SIGCHLD), 0, 0),
	"clone-newuser":     rawKill(unix.SYS_CLONE, threadFlags|unix.CLONE_NEWUSER, 0, 0),
	"clone-vfork":       rawKill(unix.SYS_CLONE, unix.CLONE_VM|unix.CLONE_VFORK|uintptr(unix.SIGCHLD), 0, 0),
	"mmap-exec": func() syscall.Errno {
		_, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_EXEC, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		return errnoOf(err)
	},
	"mprotect-exec": func() syscall.Errno {
		b, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			return errnoOf(err)
		}
		return errnoOf(unix.Mprotect(b, unix.PROT_READ|unix.PROT_EXEC))
	},
	"prlimit-set": func() syscall.Errno {
		return errnoOf(unix.Prlimit(0, unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: 8, Max: 8}, nil))
	},
	"fcntl-setlk": rawKill(unix.SYS_FCNTL, 0, unix.F_SETLK, 0),
	"x32-openat":  rawKill(x32SyscallBit|unix.SYS_OPENAT, 0, 0, 0),
	"x32-getpid":  rawKill(x32SyscallBit|unix.SYS_GETPID, 0, 0, 0),
}

func rawKill(nr, a1, a2, a3 uintptr) func() syscall.Errno {
	return func() syscall.Errno {
		_, _, e := unix.RawSyscall(nr, a1, a2, a3)
		return e
	}
}

func errnoOf(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return syscall.Errno(0xffff) // not a syscall error: matches no expectation
}

// helper runs in the child. It returns the exit code.
func helper(probe string) int {
	// A killed child must not leave a core file in the package directory.
	_ = unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{})
	if strings.HasPrefix(probe, "allow:") || strings.HasPrefix(probe, "any:") {
		return helperProfile(probe)
	}
	switch probe {
	case "threads":
		return helperThreads()
	case "allowed":
		return helperAllowed()
	}
	fn, ok := probes[probe]
	if !ok {
		fmt.Fprintf(os.Stderr, "unknown probe %q\n", probe)
		return 2
	}
	if err := Install(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	fmt.Printf("errno=%d\n", int(fn()))
	return 0
}

// helperThreads starts 64 threads before the filter is installed, so that
// only TSYNC can reach them, then waits for the parent to inspect them.
func helperThreads() int {
	var ready, hold sync.WaitGroup
	hold.Add(1)
	for i := 0; i < 64; i++ {
		ready.Add(1)
		go func() {
			runtime.LockOSThread()
			ready.Done()
			hold.Wait()
		}()
	}
	ready.Wait()
	if err := Install(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	hold.Done()
	return 0
}

// helperAllowed does what a worker does after lockdown: goroutines, GC,
// timers, the network poller on pipes, and a broker round trip with a
// passed descriptor over a SOCK_SEQPACKET pair.
func helperAllowed() int {
	fail := func(format string, a ...any) int {
		fmt.Fprintf(os.Stderr, format+"\n", a...)
		return 1
	}
	bf, wf, err := ipc.SocketPair()
	if err != nil {
		return fail("socketpair: %v", err)
	}
	broker, err := ipc.NewPacketConn(bf, 0)
	if err != nil {
		return fail("broker conn: %v", err)
	}
	worker, err := ipc.NewPacketConn(wf, 1)
	if err != nil {
		return fail("worker conn: %v", err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return fail("pipe: %v", err)
	}
	if err := Install(); err != nil {
		return fail("install: %v", err)
	}

	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			b := make([]byte, 64<<10)
			for j := range b {
				b[j] = byte(i + j)
			}
			time.Sleep(time.Millisecond)
			runtime.Gosched()
			mu.Lock()
			total += int(b[len(b)-1])
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	runtime.GC()

	go func() {
		if err := broker.Send([]byte("hello"), pw); err != nil {
			fmt.Fprintln(os.Stderr, "send:", err)
		}
	}()
	msg, files, err := worker.Recv()
	if err != nil || string(msg) != "hello" || len(files) != 1 {
		return fail("recv: %q %d %v", msg, len(files), err)
	}
	if _, err := files[0].Write([]byte("via passed fd")); err != nil {
		return fail("write passed fd: %v", err)
	}
	files[0].Close()
	pw.Close()
	got, err := io.ReadAll(pr)
	if err != nil || string(got) != "via passed fd" {
		return fail("pipe read: %q %v", got, err)
	}
	if _, err := os.Open("/etc/passwd"); errnoOf(err) != unix.EACCES {
		return fail("open: %v", err)
	}
	time.AfterFunc(time.Millisecond, func() {}).Stop()
	fmt.Println("ok", total)
	return 0
}

type outcome struct {
	errno  syscall.Errno // valid when !killed
	killed bool          // by SIGSYS
	out    string
}

func runProbe(t *testing.T, probe string) outcome {
	t.Helper()
	cmd := exec.Command(helperBinary(t), "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+probe)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		if ws.Signal() != syscall.SIGSYS {
			t.Fatalf("probe %s: killed by %v, want SIGSYS; stderr: %s", probe, ws.Signal(), stderr.String())
		}
		return outcome{killed: true}
	}
	if err != nil {
		t.Fatalf("probe %s: %v; stderr: %s", probe, err, stderr.String())
	}
	o := outcome{out: stdout.String()}
	if s, ok := strings.CutPrefix(strings.TrimSpace(o.out), "errno="); ok {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("probe %s: bad output %q", probe, o.out)
		}
		o.errno = syscall.Errno(n)
	}
	return o
}

func TestErrnoRules(t *testing.T) {
	cases := map[string]syscall.Errno{
		"openat":             unix.EACCES,
		"stat":               unix.EACCES,
		"lstat":              unix.EACCES,
		"statx":              unix.EACCES,
		"access":             unix.EACCES,
		"openat2":            unix.EACCES,
		"socket-inet":        unix.EPERM,
		"socket-unix":        unix.EPERM,
		"socket-netlink":     unix.EPERM,
		"clone3":             unix.ENOSYS,
		"ioctl-tiocsti":      unix.ENOTTY,
		"ioctl-tiocsti-high": unix.ENOTTY,
	}
	for probe, want := range cases {
		t.Run(probe, func(t *testing.T) {
			t.Parallel()
			o := runProbe(t, probe)
			if o.killed {
				t.Fatalf("killed by SIGSYS, want errno %v", want)
			}
			if o.errno != want {
				t.Fatalf("errno %d (%v), want %d (%v)", int(o.errno), o.errno, int(want), want)
			}
		})
	}
}

func TestKillRules(t *testing.T) {
	for _, probe := range []string{
		"mount", "umount2", "pivot_root", "chroot", "bpf", "ptrace", "execve", "execveat",
		"memfd_create", "io_uring_setup", "unshare", "setns", "perf_event_open", "userfaultfd",
		"keyctl", "add_key", "open_by_handle_at", "kexec_load", "init_module", "personality",
		"modify_ldt", "fsopen", "open_tree", "move_mount", "mount_setattr", "process_vm_readv",
		"pidfd_open", "pidfd_getfd", "fchmod", "prctl-set", "kill-other", "tgkill-other",
		"fork", "clone-newuser", "clone-vfork", "mmap-exec", "mprotect-exec", "prlimit-set",
		"fcntl-setlk", "x32-openat", "x32-getpid",
	} {
		t.Run(probe, func(t *testing.T) {
			t.Parallel()
			o := runProbe(t, probe)
			if !o.killed {
				t.Fatalf("not killed; output %q", o.out)
			}
		})
	}
}

func TestAllowedWorkload(t *testing.T) {
	o := runProbe(t, "allowed")
	if o.killed {
		t.Fatal("worker-like workload killed by SIGSYS: the profile misses a syscall")
	}
	if !strings.HasPrefix(o.out, "ok") {
		t.Fatalf("output %q", o.out)
	}
}

// TestEveryThreadFiltered checks from outside, as the broker would, that
// threads started before Install are filtered too (TSYNC).
func TestEveryThreadFiltered(t *testing.T) {
	cmd := exec.Command(helperBinary(t), "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=threads")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("child not ready: %q %v; stderr: %s", line, err, stderr.String())
	}
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) < 65 {
		t.Fatalf("%d threads, want at least 65", len(tasks))
	}
	for _, p := range tasks {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		st := string(b)
		for _, want := range []string{"\nSeccomp:\t2\n", "\nNoNewPrivs:\t1\n"} {
			if !strings.Contains(st, want) {
				t.Errorf("%s lacks %q", p, strings.TrimSpace(want))
			}
		}
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v; stderr: %s", err, stderr.String())
	}
}
