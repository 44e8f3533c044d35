//go:build linux && amd64

package hostile

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rex-sh/rex/internal/testutil"
	"golang.org/x/sys/unix"
)

// probe is one raw system call and the outcomes SECURITY-TESTS accepts.
type probe struct {
	name string
	nr   uintptr
	args []uintptr
	want []string // "SIGSYS", "ok", or errno names such as "EPERM"
}

func sys(name string, nr uintptr, want string, args ...uintptr) probe {
	return probe{name: name, nr: nr, args: args, want: strings.Split(want, "|")}
}

// each runs every probe in its own worker, so that a SIGSYS kill is seen
// per call, and returns "name→outcome" for the table.
func (e *env) each(probes []probe) string {
	e.t.Helper()
	var obs []string
	for _, p := range probes {
		got := e.outcome(p.nr, p.args...)
		if !slices.Contains(p.want, got) {
			e.t.Errorf("%s: %s, want %s", p.name, got, strings.Join(p.want, " or "))
		}
		obs = append(obs, p.name+"→"+got)
	}
	return strings.Join(obs, ", ")
}

// batch runs probes that must not kill in one worker (rawlist).
func (e *env) batch(probes []probe) string {
	e.t.Helper()
	script := "rawlist"
	for _, p := range probes {
		script += fmt.Sprintf(" %d", p.nr)
		for _, a := range p.args {
			script += fmt.Sprintf(",%d", a)
		}
	}
	res := e.run(script)
	if killedBySeccomp(res) {
		e.t.Fatalf("one of %q killed the worker", script)
	}
	r := e.decode(res)
	var obs []string
	for i, p := range probes {
		got := errnoName(r.RawList[i])
		if !slices.Contains(p.want, got) {
			e.t.Errorf("%s: %s, want %s", p.name, got, strings.Join(p.want, " or "))
		}
		obs = append(obs, p.name+"→"+got)
	}
	return strings.Join(obs, ", ")
}

const minus1 = ^uintptr(0)

func TestH01_OpenAndStat(t *testing.T) {
	e := newEnv(t)
	paths := []string{"/etc/passwd", "/", "..", "/proc/1/root", e.sentinel}
	r := e.probe("paths " + strings.Join(paths, " "))
	var obs []string
	for _, p := range paths {
		for _, call := range []string{"open", "openat2", "stat", "statx", "access"} {
			got := errnoName(r.Paths[p][call])
			if got != "EACCES" {
				t.Errorf("%s %s: %s, want EACCES from the filter", call, p, got)
			}
		}
	}
	obs = append(obs, fmt.Sprintf("open/openat2/stat/statx/access on %d paths (incl. the sentinel) → EACCES", len(paths)))
	testutil.Hostile(t, "H01", "open/openat2/stat/statx/access of /etc/passwd, /, .., /proc/1/root, a host secret",
		"EACCES from seccomp (fs_denied_errno); root is empty", strings.Join(obs, "; "))
}

func TestH02_NetworkSockets(t *testing.T) {
	e := newEnv(t)
	stream := uintptr(unix.SOCK_STREAM)
	obs := e.batch([]probe{
		sys("AF_INET", unix.SYS_SOCKET, "EPERM", unix.AF_INET, stream, 0),
		sys("AF_INET6", unix.SYS_SOCKET, "EPERM", unix.AF_INET6, stream, 0),
		sys("AF_NETLINK", unix.SYS_SOCKET, "EPERM", unix.AF_NETLINK, unix.SOCK_RAW, 0),
		sys("AF_PACKET", unix.SYS_SOCKET, "EPERM", unix.AF_PACKET, unix.SOCK_RAW, 0),
		sys("AF_VSOCK", unix.SYS_SOCKET, "EPERM", unix.AF_VSOCK, stream, 0),
		sys("AF_ALG", unix.SYS_SOCKET, "EPERM", unix.AF_ALG, unix.SOCK_SEQPACKET, 0),
	})
	obs += ", " + e.each([]probe{
		sys("connect", unix.SYS_CONNECT, "SIGSYS|EPERM", 3, 0, 0),
		sys("bind", unix.SYS_BIND, "SIGSYS|EPERM", 3, 0, 0),
	})
	testutil.Hostile(t, "H02", "socket(AF_INET/INET6/NETLINK/PACKET/VSOCK/ALG), connect, bind",
		"EPERM/SIGSYS at socket", "socket "+obs)
}

func TestH03_UnixSockets(t *testing.T) {
	e := newEnv(t)
	obs := e.batch([]probe{
		sys("socket(AF_UNIX)", unix.SYS_SOCKET, "EPERM", unix.AF_UNIX, unix.SOCK_STREAM, 0),
		sys("socketpair", unix.SYS_SOCKETPAIR, "EPERM", unix.AF_UNIX, unix.SOCK_STREAM, 0, 0),
	})
	testutil.Hostile(t, "H03", "AF_UNIX socket to reach /run/rex, dbus, abstract @rex, X11",
		"SIGSYS/EPERM at socket; paths absent; other netns",
		obs+"; no socket can be made, so no path or abstract name is reachable (netns apart: TestWorkerPosture)")
}

func TestH04_IOUring(t *testing.T) {
	e := newEnv(t)
	obs := e.each([]probe{
		sys("io_uring_setup", unix.SYS_IO_URING_SETUP, "SIGSYS", 1, 0),
		sys("io_uring_enter", unix.SYS_IO_URING_ENTER, "SIGSYS", minus1, 0, 0),
		sys("io_uring_register", unix.SYS_IO_URING_REGISTER, "SIGSYS", minus1, 0, 0),
	})
	testutil.Hostile(t, "H04", "io_uring_setup/enter/register", "EPERM/SIGSYS", obs)
}

func TestH05_CloneAndNamespaces(t *testing.T) {
	e := newEnv(t)
	obs := e.batch([]probe{sys("clone3", unix.SYS_CLONE3, "ENOSYS", 0, 88)})
	obs += ", " + e.each([]probe{
		sys("clone(NEWUSER)", unix.SYS_CLONE, "SIGSYS", unix.CLONE_NEWUSER|uintptr(unix.SIGCHLD), 0, 0),
		sys("fork-style clone", unix.SYS_CLONE, "SIGSYS", uintptr(unix.SIGCHLD), 0, 0),
		sys("fork", unix.SYS_FORK, "SIGSYS"),
		sys("vfork", unix.SYS_VFORK, "SIGSYS"),
		sys("unshare(NEWUSER|NEWNS)", unix.SYS_UNSHARE, "SIGSYS", unix.CLONE_NEWUSER|unix.CLONE_NEWNS),
		sys("setns", unix.SYS_SETNS, "SIGSYS", minus1, 0),
	})
	testutil.Hostile(t, "H05", "clone3, clone(CLONE_NEWUSER), fork, vfork, unshare, setns",
		"clone3 ENOSYS; namespaces/fork SIGSYS; thread clone allowed", obs+"; thread clone: H11 starts 64 threads")
}

func TestH06_ABIConfusion(t *testing.T) {
	e := newEnv(t)
	const x32 = 0x40000000
	obs := e.each([]probe{
		sys("x32 openat", x32|unix.SYS_OPENAT, "SIGSYS", 0, 0, 0),
		sys("x32 socket", x32|unix.SYS_SOCKET, "SIGSYS", unix.AF_INET, unix.SOCK_STREAM, 0),
		sys("x32 getpid", x32|unix.SYS_GETPID, "SIGSYS"),
	})
	var i386 []string
	for _, c := range []struct {
		name string
		nr   int
	}{{"i386 open (int 0x80)", 5}, {"i386 socketcall (int 0x80)", 102}, {"i386 getpid (int 0x80)", 20}} {
		got := e.describe(e.run(fmt.Sprintf("int80 %d", c.nr)))
		if got != "SIGSYS" {
			t.Errorf("%s: %s, want SIGSYS (arch mismatch)", c.name, got)
		}
		i386 = append(i386, c.name+"→"+got)
	}
	testutil.Hostile(t, "H06", "x32 (bit 30) openat/socket/getpid; i386 int 0x80 open/socketcall/getpid",
		"SIGSYS (arch / x32 check) — never executes", obs+", "+strings.Join(i386, ", "))
}

func TestH07_TIOCSTI(t *testing.T) {
	e := newEnv(t)
	obs := e.batch([]probe{
		sys("ioctl(0,TIOCSTI)", unix.SYS_IOCTL, "ENOTTY|EPERM", 0, unix.TIOCSTI, 0),
		sys("ioctl(1,0x123<<32|TIOCSTI)", unix.SYS_IOCTL, "ENOTTY|EPERM", 1, 0x123<<32|unix.TIOCSTI, 0),
		sys("ioctl(2,TIOCLINUX)", unix.SYS_IOCTL, "ENOTTY|EPERM", 2, unix.TIOCLINUX, 0),
		sys("ioctl(0,TIOCSCTTY)", unix.SYS_IOCTL, "ENOTTY|EPERM", 0, unix.TIOCSCTTY, 0),
	})
	r := e.probe("paths /dev/tty")
	if got := errnoName(r.Paths["/dev/tty"]["open"]); got != "EACCES" {
		t.Errorf("open /dev/tty: %s", got)
	}
	for _, f := range r.FDs {
		if f.FD <= 2 && f.Type != "fifo" {
			t.Errorf("fd %d is a %s: a terminal could be reached", f.FD, f.Type)
		}
	}
	legacy, _ := os.ReadFile("/proc/sys/dev/tty/legacy_tiocsti")
	testutil.Hostile(t, "H07", "ioctl TIOCSTI (also with high bits, CVE-2019-10063), TIOCLINUX, TIOCSCTTY; open /dev/tty",
		"no tty; ioctl refused; nothing injected",
		fmt.Sprintf("%s; open /dev/tty→EACCES; fds 0-2 are pipes, so no terminal exists to inject into (host legacy_tiocsti=%s)",
			obs, strings.TrimSpace(string(legacy))))
}

func TestH08_PtraceAndSignals(t *testing.T) {
	e := newEnv(t)
	obs := e.each([]probe{
		sys("ptrace(ATTACH,2)", unix.SYS_PTRACE, "SIGSYS", unix.PTRACE_ATTACH, 2),
		sys("process_vm_readv", unix.SYS_PROCESS_VM_READV, "SIGSYS", 2, 0, 0, 0, 0, 0),
		sys("pidfd_open(2)", unix.SYS_PIDFD_OPEN, "SIGSYS", 2, 0),
		sys("pidfd_getfd", unix.SYS_PIDFD_GETFD, "SIGSYS", 0, 0, 0),
		sys("kill(-1,SIGKILL)", unix.SYS_KILL, "SIGSYS", minus1, uintptr(unix.SIGKILL)),
		sys("kill(2,SIGKILL)", unix.SYS_KILL, "SIGSYS", 2, uintptr(unix.SIGKILL)),
		sys("tgkill(2,2,SIGKILL)", unix.SYS_TGKILL, "SIGSYS", 2, 2, uintptr(unix.SIGKILL)),
	})
	if err := unix.Kill(os.Getpid(), 0); err != nil {
		t.Errorf("broker gone: %v", err)
	}
	testutil.Hostile(t, "H08", "ptrace, process_vm_readv, pidfd_open/getfd, kill/tgkill of other pids, kill(-1)",
		"SIGSYS/EPERM/ESRCH; broker and caller unaffected",
		obs+"; the worker is pid 1 of its own pid namespace, so host pids are not even nameable")
}

func TestH09_KernelAttackSurface(t *testing.T) {
	e := newEnv(t)
	obs := e.each([]probe{
		sys("mount", unix.SYS_MOUNT, "SIGSYS", 0, 0, 0, 0, 0),
		sys("umount2", unix.SYS_UMOUNT2, "SIGSYS", 0, 0),
		sys("pivot_root", unix.SYS_PIVOT_ROOT, "SIGSYS", 0, 0),
		sys("fsopen", unix.SYS_FSOPEN, "SIGSYS", 0, 0),
		sys("fsmount", unix.SYS_FSMOUNT, "SIGSYS", minus1, 0, 0),
		sys("open_tree", unix.SYS_OPEN_TREE, "SIGSYS", minus1, 0, 0),
		sys("move_mount", unix.SYS_MOVE_MOUNT, "SIGSYS", minus1, 0, minus1, 0, 0),
		sys("mount_setattr", unix.SYS_MOUNT_SETATTR, "SIGSYS", minus1, 0, 0, 0, 0),
		sys("bpf", unix.SYS_BPF, "SIGSYS", 0, 0, 0),
		sys("perf_event_open", unix.SYS_PERF_EVENT_OPEN, "SIGSYS", 0, 0, minus1, minus1, 0),
		sys("userfaultfd", unix.SYS_USERFAULTFD, "SIGSYS", 0),
		sys("keyctl", unix.SYS_KEYCTL, "SIGSYS", 0, 0),
		sys("add_key", unix.SYS_ADD_KEY, "SIGSYS", 0, 0, 0, 0, 0),
		sys("request_key", unix.SYS_REQUEST_KEY, "SIGSYS", 0, 0, 0, 0),
		sys("open_by_handle_at", unix.SYS_OPEN_BY_HANDLE_AT, "SIGSYS", minus1, 0, 0),
		sys("name_to_handle_at", unix.SYS_NAME_TO_HANDLE_AT, "SIGSYS|EACCES", minus1, 0, 0, 0, 0),
		sys("kexec_load", unix.SYS_KEXEC_LOAD, "SIGSYS", 0, 0, 0, 0),
		sys("init_module", unix.SYS_INIT_MODULE, "SIGSYS", 0, 0, 0),
		sys("finit_module", unix.SYS_FINIT_MODULE, "SIGSYS", minus1, 0, 0),
		sys("personality(READ_IMPLIES_EXEC)", unix.SYS_PERSONALITY, "SIGSYS", 0x0400000),
		sys("modify_ldt", unix.SYS_MODIFY_LDT, "SIGSYS", 0, 0, 0),
		sys("chroot", unix.SYS_CHROOT, "SIGSYS", 0),
		sys("setuid(0)", unix.SYS_SETUID, "SIGSYS", 0),
		sys("prctl(PR_SET_DUMPABLE)", unix.SYS_PRCTL, "SIGSYS", unix.PR_SET_DUMPABLE, 1),
		sys("mmap(PROT_EXEC)", unix.SYS_MMAP, "SIGSYS", 0, 4096, unix.PROT_READ|unix.PROT_EXEC, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS, minus1, 0),
	})
	testutil.Hostile(t, "H09", "mount family, bpf, perf_event_open, userfaultfd, keyctl/add_key, open_by_handle_at, kexec, modules, personality, modify_ldt, chroot, setuid, PROT_EXEC",
		"SIGSYS for all", obs)
}

func TestH10_ExecAfterStart(t *testing.T) {
	e := newEnv(t)
	obs := e.each([]probe{
		sys("execve", unix.SYS_EXECVE, "SIGSYS", 0, 0, 0),
		sys("execveat(AT_EMPTY_PATH)", unix.SYS_EXECVEAT, "SIGSYS", 0, 0, 0, 0, unix.AT_EMPTY_PATH),
		sys("memfd_create", unix.SYS_MEMFD_CREATE, "SIGSYS", 0, 0),
	})
	testutil.Hostile(t, "H10", "execve, memfd_create + execveat(AT_EMPTY_PATH) after start", "SIGSYS/EPERM", obs)
}

func TestH11_EveryThreadConfined(t *testing.T) {
	e := newEnv(t)
	pid, wait := e.held("threads 64 2000")
	// The worker is locked down before it starts the 64 threads: wait
	// until they all exist (they are held for 2 s).
	var tasks []string
	for i := 0; i < 75; i++ {
		tasks, _ = filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
		if len(tasks) > 64 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	checked := 0
	for _, p := range tasks {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // a thread that just exited
		}
		checked++
		for _, want := range []string{"\nSeccomp:\t2\n", "\nNoNewPrivs:\t1\n", "\nCapInh:\t0000000000000000\n",
			"\nCapPrm:\t0000000000000000\n", "\nCapEff:\t0000000000000000\n", "\nCapBnd:\t0000000000000000\n",
			"\nCapAmb:\t0000000000000000\n"} {
			if !strings.Contains(string(b), want) {
				t.Errorf("%s lacks %q", p, strings.TrimSpace(want))
			}
		}
	}
	r := e.decode(wait())
	if r.Threads == nil || r.Threads.Threads != 64 || len(r.Threads.Bad) != 0 {
		t.Errorf("threads from inside: %+v", r.Threads)
	}
	if checked < 64 {
		t.Errorf("only %d threads seen from outside", checked)
	}
	testutil.Hostile(t, "H11", "64 threads started after lockdown check seccomp, no_new_privs, capabilities; broker reads every task's status",
		"every thread: Seccomp 2, NoNewPrivs 1, no capabilities",
		fmt.Sprintf("%d tasks read from outside, 64 threads from inside: all Seccomp 2, NoNewPrivs 1, caps 0 (threads before lockdown: seccomp TestEveryThreadFiltered)", checked))
}

func TestH12_FDInventory(t *testing.T) {
	e := newEnv(t)
	r := e.probe("report")
	sockets := 0
	var desc []string
	for _, f := range r.FDs {
		desc = append(desc, fmt.Sprintf("%d:%s", f.FD, f.Type))
		switch {
		case f.FD <= 2:
			if f.Type != "fifo" {
				t.Errorf("fd %d is %s, want a pipe", f.FD, f.Type)
			}
		case !f.Cloexec:
			// The worker never execs, and nothing of it should cross an
			// exec if it somehow did.
			t.Errorf("fd %d (%s) is not close-on-exec", f.FD, f.Type)
		}
		switch f.Type {
		case "socket":
			sockets++
		case "fifo", "anon": // stdio pipes; Go's epoll and eventfd
		default:
			t.Errorf("fd %d is a %s", f.FD, f.Type)
		}
		if f.Flags&unix.O_PATH != 0 {
			t.Errorf("fd %d is O_PATH", f.FD)
		}
	}
	if sockets != 1 {
		t.Errorf("%d sockets, want only the broker's", sockets)
	}
	testutil.Hostile(t, "H12", "fd inventory 0..RLIMIT_NOFILE by fcntl/fstat",
		"{0,1,2 pipes, broker socket}; no dir/tty/O_PATH; ≥3 CLOEXEC", strings.Join(desc, " ")+" (anon = Go's epoll/eventfd)")
}

func TestH13_EnvironmentLeaks(t *testing.T) {
	t.Setenv("REX_TEST_TOKEN", "s3cret-token")
	t.Setenv("SSH_AUTH_SOCK", "/tmp/ssh-agent.sock")
	e := newEnv(t)
	pid, wait := e.held("threads 1 800")
	root, err := os.ReadDir(fmt.Sprintf("/proc/%d/root", pid))
	if err != nil || len(root) != 0 {
		t.Errorf("worker root: %v %v, want empty", root, err)
	}
	st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	var outsideUID string
	for _, l := range strings.Split(string(st), "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "Uid:" {
			outsideUID = f[1]
		}
	}
	if os.Geteuid() == 0 && (outsideUID == "0" || outsideUID == "") {
		t.Errorf("worker runs as host uid %q", outsideUID)
	}
	r := e.decode(wait())
	if !slices.Equal(r.Env, []string{"REX_WORKER=1", "GOMAXPROCS=1"}) {
		t.Errorf("environment %q, want only the broker's REX_WORKER and GOMAXPROCS", r.Env)
	}
	if r.Hostname != "rex" || r.UID != 0 || r.Cwd != "/" {
		t.Errorf("inside: hostname %q uid %d cwd %q", r.Hostname, r.UID, r.Cwd)
	}
	p := e.probe("paths /proc/self/status /sys/kernel /dev/null")
	for path, calls := range p.Paths {
		for call, n := range calls {
			if errnoName(n) != "EACCES" {
				t.Errorf("%s %s: %s", call, path, errnoName(n))
			}
		}
	}
	testutil.Hostile(t, "H13", "env tokens/SSH_AUTH_SOCK, hostname, /proc /sys /dev, uid as seen inside and out",
		"env scrubbed; hostname fixed; no /proc,/sys; dedicated uid",
		fmt.Sprintf("env %q; hostname %q; uid 0 inside = host uid %s; root empty; /proc,/sys,/dev → EACCES", r.Env, r.Hostname, outsideUID))
}
