package worker

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"syscall"
	"time"
	"unsafe"

	"github.com/rex-sh/rex/ipc"
	"github.com/rex-sh/rex/seccomp"
	"golang.org/x/sys/unix"
)

// Exit codes of rex-worker when the sandbox cannot be set up. The broker
// maps any of them to an internal error; they tell an operator which layer
// failed. A script's own failure is reported in the WorkerResult, exit 0.
const (
	ExitUsage    = 70                   // not started the way the broker starts it (argv, env, pid 1)
	ExitRoot     = 71                   // making the empty root (mounts, pivot_root)
	ExitLimits   = 72                   // hostname, rlimits, the inherited descriptors
	ExitPrivs    = 73                   // capabilities, securebits, no_new_privs, dumpable
	ExitLandlock = 74                   // Landlock is present but could not be applied
	ExitPosture  = 76                   // the lock-down check found a gap (75 was the retired re-exec)
	ExitSocket   = 77                   // wrapping the broker socket
	ExitSeccomp  = 78                   // installing the seccomp filter
	ExitStart    = ipc.WorkerExitStart  // reading the Start frame
	ExitResult   = 80                   // writing the WorkerResult frame
	ExitUserns   = ipc.WorkerExitUserns // making its own user namespace (--userns) at the entry point
)

// BrokerFD is the worker's end of the socketpair, set up by the broker.
const BrokerFD = 3

// Limits applied during the lock-down. They are process-wide.
// RLIMIT_NPROC is not set: a worker uid may run several workers at once,
// and seccomp already forbids creating processes.
const (
	maxFiles     = 64       // RLIMIT_NOFILE: stdio, the socket, a few passed files
	maxFileSize  = 64 << 20 // RLIMIT_FSIZE: what one run may write through a passed fd
	maxAddrSpace = 3 << 30  // RLIMIT_AS: memory fallback where no cgroup limits the worker (see below)
	threadStack  = 2 << 20  // RLIMIT_STACK: the main thread's stack (Go makes the others itself)
)

// The Go runtime reserves about 1.5 GiB of address space at start (heap
// arena index, page summaries: measured VmSize 1.53 GB with 6 MB resident),
// so an RLIMIT_AS of 1 GiB kills it with "out of memory" after a few MB of
// heap. 3 GiB leaves the script roughly 1.5 GiB of heap; the cgroup memory
// limit the broker sets is the real bound where the host has one.

// SetupError is a failed sandbox step; Exit is the process exit code.
type SetupError struct {
	Step string
	Exit int
	Err  error
}

func (e *SetupError) Error() string { return e.Step + ": " + e.Err.Error() }
func (e *SetupError) Unwrap() error { return e.Err }

func fail(exit int, step string, err error) error {
	return &SetupError{Step: step, Exit: exit, Err: err}
}

// RunFunc prepares a run for the broker client c, as far as that can go
// before the script is known, and returns what runs the script;
// cmd/rex-worker passes Prepare.
type RunFunc func(c *ipc.Client) func(start *ipc.Start) *ipc.WorkerResult

// Entry is what the binary's own entry point did before the Go runtime
// started any thread (cmd/rex-worker's rexEntry).
type Entry struct {
	// Locked: it dropped the bounding set, locked the securebits and set
	// no_new_privs, so every thread has them, and the lock-down checks
	// them instead of making those calls on every thread.
	Locked bool
	// Userns is nil when it made the worker's user, mount and uts
	// namespaces (asked for with ipc.WorkerUsernsArg), else why it did not.
	Userns error
}

// Main is rex-worker's main. It returns the exit code.
func Main(args []string, run RunFunc, entry Entry) int {
	var err error
	switch {
	case os.Getenv("REX_WORKER") != "1" || len(args) > 2 || (len(args) == 2 && args[1] != ipc.WorkerUsernsArg):
		err = fail(ExitUsage, "usage", errors.New("rex-worker is started by rex-broker, not by hand"))
	case len(args) == 2 && entry.Userns != nil:
		// Without it the worker is a plain unprivileged process in the
		// host's mount namespace: nothing below could work, or should.
		err = fail(ExitUserns, "user namespace", entry.Userns)
	default:
		err = sandbox(run, entry.Locked)
	}
	if err == nil {
		return 0
	}
	fmt.Fprintf(os.Stderr, "rex-worker: %v\n", err)
	var se *SetupError
	if errors.As(err, &se) {
		return se.Exit
	}
	return ExitUsage
}

// sandbox runs as pid 1 and uid 0 of the fresh namespaces the broker made
// (the user, mount and uts ones made at the entry point with ipc.WorkerUsernsArg).
// Before any byte of the script is read it empties the root, sets limits,
// drops every capability, sets no_new_privs and Landlock, checks the
// result and installs the seccomp filter; then it reads the Start frame,
// runs the script and writes the result.
//
// Capabilities, securebits, no_new_privs and Landlock belong to each
// thread, and the Go runtime has several by now: they are set with
// syscall.AllThreadsSyscall, which makes the call on every thread of the
// process at once (threads started later inherit them), and seccomp with
// TSYNC. AllThreadsSyscall needs a binary without cgo, which is why the
// seccomp filter is loaded ready-compiled rather than through libseccomp.
func sandbox(run RunFunc, lockedAtEntry bool) error {
	// Not locked to a thread: nothing here is per-thread but what the
	// all-threads calls set everywhere, and LockOSThread would start the
	// runtime's template thread, one more for every one of those calls to
	// stop and signal.
	if os.Getpid() != 1 {
		// Anything below would change the mounts of the caller's namespace.
		return fail(ExitUsage, "lock-down", errors.New("not pid 1 of a new pid namespace"))
	}
	if err := sameMountNSAsInit(); err != nil {
		return fail(ExitUsage, "lock-down", err)
	}
	if err := checkBrokerSocket(BrokerFD); err != nil {
		return fail(ExitLimits, "broker socket", err)
	}
	// Nothing above the socket may reach the script. The runtime holds no
	// descriptor of its own here: rex-worker turns off the cgroup-aware
	// GOMAXPROCS, which would keep the host's cgroup CPU limit files open
	// (see cmd/rex-worker). checkPosture below verifies the result.
	if err := unix.CloseRange(BrokerFD+1, ^uint(0), 0); err != nil {
		return fail(ExitLimits, "close_range", err)
	}
	if err := emptyRoot(); err != nil {
		return fail(ExitRoot, "empty root", err)
	}
	if err := unix.Sethostname([]byte("rex")); err != nil {
		return fail(ExitLimits, "sethostname", err)
	}
	if err := unix.Setdomainname([]byte("(none)")); err != nil {
		return fail(ExitLimits, "setdomainname", err)
	}
	if err := setLimits(); err != nil {
		return fail(ExitLimits, "rlimits", err)
	}
	if err := dropPrivileges(lockedAtEntry); err != nil {
		return fail(ExitPrivs, "privileges", err)
	}
	if err := restrictLandlock(); err != nil {
		if !errors.Is(err, errNoLandlock) {
			return fail(ExitLandlock, "landlock", err)
		}
		fmt.Fprintf(os.Stderr, "rex-worker: landlock unavailable: %v\n", err)
	}
	c, err := Lockdown()
	if err != nil {
		return err
	}
	// The broker starts the worker with GOMAXPROCS=1: fewer threads at
	// start make each all-threads call above cheaper (two, or ~46 without
	// the entry point's calls).
	// The script gets the machine's processors back for its collector.
	runtime.GOMAXPROCS(runtime.NumCPU())
	// A worker that waits for its script (the broker's pool) warms up and
	// prepares its run meanwhile, off the run's clock; one whose script is
	// already there prepares at once.
	var script func(*ipc.Start) *ipc.WorkerResult
	in := awaitStart(func() { script = run(c) }, Warm)
	if script == nil {
		script = run(c)
	}
	var start ipc.Start
	if err := ipc.ReadFrameAs(in, ipc.MsgStart, &start); err != nil {
		return fail(ExitStart, "read start frame", err)
	}
	res := script(&start)
	if err := ipc.WriteFrame(os.Stdout, ipc.MsgWorkerResult, res); err != nil {
		return fail(ExitResult, "write result frame", err)
	}
	if start.ExitAfterResult {
		return nil
	}
	// Stay until the broker hangs up. It reads the peak memory of a live
	// worker and then kills it, so the run's result does not wait for this
	// process to tear down its threads and memory (about a millisecond).
	// The broker ends every worker it started (it kills it after the
	// result, or its death does through the parent-death signal), so the
	// wait has no timer of its own: one would add the runtime's poller.
	awaitHangup(BrokerFD)
	return nil
}

// sameMountNSAsInit refuses to run in the mount namespace of the host's (or
// container's) init: the worker must only ever pivot a namespace made for it.
func sameMountNSAsInit() error {
	own, err1 := os.Readlink("/proc/self/ns/mnt")
	init, err2 := os.Readlink("/proc/1/ns/mnt")
	if err1 != nil {
		return fmt.Errorf("cannot check the mount namespace: %w", err1)
	}
	if err2 == nil && own == init {
		return errors.New("running in init's mount namespace")
	}
	return nil
}

func checkBrokerSocket(fd int) error {
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return fmt.Errorf("fd %d: %w", fd, err)
	}
	dom, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err != nil {
		return fmt.Errorf("fd %d: %w", fd, err)
	}
	if typ != unix.SOCK_SEQPACKET || dom != unix.AF_UNIX {
		return fmt.Errorf("fd %d is not a unix SOCK_SEQPACKET socket", fd)
	}
	return nil
}

// emptyRoot replaces the root with an empty, read-only tmpfs: the runc
// pivot_root(".", ".") trick, which needs no directory to put the old root
// in. Afterwards there is no /proc, /sys, /dev or host file.
func emptyRoot() error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return &os.PathError{Op: "make mounts private", Path: "/", Err: err}
	}
	dir := ""
	for _, d := range []string{"/tmp", "/mnt", "/var/tmp", "/run"} {
		var st unix.Stat_t
		if unix.Lstat(d, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
			dir = d
			break
		}
	}
	if dir == "" {
		return errors.New("no directory to mount the new root on")
	}
	const flags = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	if err := unix.Mount("tmpfs", dir, "tmpfs", flags, "size=16k,nr_inodes=4,mode=0555"); err != nil {
		return &os.PathError{Op: "mount tmpfs", Path: dir, Err: err}
	}
	if err := unix.Chdir(dir); err != nil {
		return &os.PathError{Op: "chdir", Path: dir, Err: err}
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return &os.PathError{Op: "pivot_root", Path: dir, Err: err}
	}
	// The old root is now stacked on "."; detach it and all below it.
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return &os.PathError{Op: "unmount old root", Path: ".", Err: err}
	}
	if err := unix.Chdir("/"); err != nil {
		return &os.PathError{Op: "chdir", Path: "/", Err: err}
	}
	if err := unix.Mount("", "/", "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|flags, ""); err != nil {
		return &os.PathError{Op: "remount read-only", Path: "/", Err: err}
	}
	return nil
}

func setLimits() error {
	for _, l := range []struct {
		name     string
		resource int
		max      uint64
	}{
		{"RLIMIT_CORE", unix.RLIMIT_CORE, 0},
		{"RLIMIT_NOFILE", unix.RLIMIT_NOFILE, maxFiles},
		{"RLIMIT_FSIZE", unix.RLIMIT_FSIZE, maxFileSize},
		{"RLIMIT_STACK", unix.RLIMIT_STACK, threadStack},
		{"RLIMIT_AS", unix.RLIMIT_AS, maxAddrSpace},
	} {
		var cur syscall.Rlimit
		if err := syscall.Getrlimit(l.resource, &cur); err != nil {
			return fmt.Errorf("%s: %w", l.name, err)
		}
		// Only ever lower: the broker may have set tighter limits.
		v := min(l.max, cur.Max)
		// syscall.Setrlimit, not unix: the Go runtime tracks RLIMIT_NOFILE.
		if err := syscall.Setrlimit(l.resource, &syscall.Rlimit{Cur: v, Max: v}); err != nil {
			return fmt.Errorf("%s: %w", l.name, err)
		}
	}
	return nil
}

// Securebits (linux/securebits.h). Locked on, they make uid 0 inside the
// namespace an ordinary uid: nothing can give the worker a capability back.
const (
	secbitNoroot                  = 1 << 0
	secbitNorootLocked            = 1 << 1
	secbitNoSetuidFixup           = 1 << 2
	secbitNoSetuidFixupLocked     = 1 << 3
	secbitKeepCapsLocked          = 1 << 5
	secbitNoCapAmbientRaise       = 1 << 6
	secbitNoCapAmbientRaiseLocked = 1 << 7
)

// SecureBits are the securebits every thread of the worker ends with
// (cmd/rex-worker's entry point sets the same value).
const SecureBits = secbitNoroot | secbitNorootLocked | secbitNoSetuidFixup | secbitNoSetuidFixupLocked |
	secbitKeepCapsLocked | secbitNoCapAmbientRaise | secbitNoCapAmbientRaiseLocked

// dropPrivileges empties every capability set of every thread, locks the
// securebits and sets no_new_privs, and makes the process non-dumpable.
// Order matters: the bounding set and the securebits need CAP_SETPCAP, so
// the capability sets go last but one. When the entry point made the
// calls that threads inherit (lockedAtEntry) and this thread shows them,
// only the capability sets are left to empty on every thread.
func dropPrivileges(lockedAtEntry bool) error {
	if !lockedAtEntry || !settledAtEntry() {
		if err := dropInherited(); err != nil {
			return err
		}
	}
	// Called directly, not through allThreads: AllThreadsSyscall is
	// go:uintptrescapes, which keeps hdr and data where the other threads
	// can read them only when the conversions are in its own call.
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if _, _, e := syscall.AllThreadsSyscall(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); e != 0 {
		return fmt.Errorf("capset: %w", e)
	}
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("dumpable: %w", err)
	}
	return nil
}

// settledAtEntry reports whether this thread has an empty bounding set and
// ambient set, the worker's securebits and no_new_privs: what the entry
// point sets before any other thread exists, so that all threads have it.
func settledAtEntry() bool {
	if boundingLeft() {
		return false
	}
	bits, err := unix.PrctlRetInt(unix.PR_GET_SECUREBITS, 0, 0, 0, 0)
	if err != nil || bits != SecureBits {
		return false
	}
	nnp, err := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)
	if err != nil || nnp != 1 {
		return false
	}
	for c := 0; ; c++ {
		set, err := unix.PrctlRetInt(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_IS_SET, uintptr(c), 0, 0)
		if err == unix.EINVAL {
			return true
		}
		if err != nil || set != 0 {
			return false
		}
	}
}

// boundingLeft reports whether this thread's bounding set holds any
// capability.
func boundingLeft() bool {
	for c := 0; ; c++ {
		v, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(c), 0, 0, 0)
		if err == unix.EINVAL {
			return false // past the kernel's last capability
		}
		if err != nil || v != 0 {
			return true
		}
	}
}

// dropInherited makes, on every thread, the calls of the entry point:
// bounding set, ambient set, securebits and no_new_privs.
func dropInherited() error {
	for c := 0; ; c++ {
		if _, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(c), 0, 0, 0); err == unix.EINVAL {
			break // past the kernel's last capability
		}
		if err := allThreads(unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, uintptr(c), 0); err != nil {
			return fmt.Errorf("drop capability %d from the bounding set: %w", c, err)
		}
	}
	if err := allThreads(unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0); err != nil {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	// The securebits need CAP_SETPCAP: before the capability sets go.
	if err := allThreads(unix.SYS_PRCTL, unix.PR_SET_SECUREBITS, SecureBits, 0); err != nil {
		return fmt.Errorf("securebits: %w", err)
	}
	if err := allThreads(unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0); err != nil {
		return fmt.Errorf("no_new_privs: %w", err)
	}
	return nil
}

// allThreads makes one system call with integer arguments on every thread
// of the process; the runtime kills the process if the threads' results
// differ, so no thread is ever left behind.
func allThreads(trap, a1, a2, a3 uintptr) error {
	if _, _, e := syscall.AllThreadsSyscall(trap, a1, a2, a3); e != 0 {
		return e
	}
	return nil
}

// awaitHangup blocks until the peer of the packet socket fd shuts it down
// or closes it.
func awaitHangup(fd int) {
	var b [1]byte
	for {
		n, err := unix.Read(fd, b[:])
		if err == unix.EINTR {
			continue
		}
		if n <= 0 || err != nil {
			return
		}
	}
}

// awaitStart returns the reader of the Start frame. When the frame is
// already waiting (a worker started for a run) it reads at once. Otherwise
// it first runs prep, the run's own preparation, which the wait then hides,
// and waits for the frame asleep for up to startGrace: a frame on its way,
// as for a standalone run's worker that locked down while its broker was
// still loading the policy, would only find a warming worker taking the
// CPU that broker needs. When no byte comes within startGrace — a worker
// the broker started ahead of any run, for its pool — it runs warm, off
// the run's clock.
func awaitStart(prep, warm func()) io.Reader {
	var b [1]byte
	if unix.SetNonblock(0, true) != nil {
		return os.Stdin
	}
	n, err := unix.Read(0, b[:])
	if err == unix.EAGAIN {
		prep()
		for waited := time.Duration(0); ; waited += startPoll {
			n, err = unix.Read(0, b[:])
			if n == 1 || err != unix.EAGAIN || waited >= startGrace {
				break
			}
			_ = unix.Nanosleep(&unix.Timespec{Nsec: int64(startPoll)}, nil)
		}
	}
	if serr := unix.SetNonblock(0, false); serr != nil {
		return os.Stdin // a later read fails cleanly on EAGAIN
	}
	if n == 1 {
		return io.MultiReader(bytes.NewReader(b[:1]), os.Stdin)
	}
	if err == unix.EAGAIN {
		warm()
	}
	return os.Stdin
}

// startGrace is how long awaitStart waits for a Start frame before it
// warms up, and startPoll how often it looks meanwhile. A standalone
// run's frame came 0.3-1.5 ms after its worker was ready here.
const (
	startGrace = 3 * time.Millisecond
	startPoll  = 100 * time.Microsecond
)

// Lockdown is the last step before the script: it verifies the posture the
// steps before left (pid 1, no_new_privs, no capability, no stray
// descriptor), returns the
// client on the broker socket and installs the seccomp filter on every
// thread. It must run before anything reads the Start frame.
func Lockdown() (*ipc.Client, error) {
	// The parent-death signal is re-armed in case the credential changes
	// cleared it.
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		return nil, fail(ExitPrivs, "pdeathsig", err)
	}
	if err := checkPosture(); err != nil {
		return nil, fail(ExitPosture, "posture", err)
	}
	if err := checkBrokerSocket(BrokerFD); err != nil {
		return nil, fail(ExitSocket, "broker socket", err)
	}
	// Raw blocking I/O on fd 3: no runtime poller, so the worker's only
	// descriptors are stdio and the broker socket.
	unix.CloseOnExec(BrokerFD)
	// It polls for a reply only while the broker says it polls too
	// (ipc.Client.PollWithBroker): a worker cannot see how busy the
	// machine is.
	pc := ipc.NewRawPacketConn(BrokerFD, ipc.MaxFDs)
	if err := seccomp.Install(); err != nil {
		return nil, fail(ExitSeccomp, "seccomp", err)
	}
	c := ipc.NewClient(pc)
	c.PollWithBroker(ipc.DefaultSpin)
	return c, nil
}

func checkPosture() error {
	if os.Getpid() != 1 {
		return errors.New("not pid 1 of the worker's pid namespace")
	}
	if v, err := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0); err != nil || v != 1 {
		return fmt.Errorf("no_new_privs is not set (%d, %v)", v, err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	if data != [2]unix.CapUserData{} {
		return fmt.Errorf("capabilities left: %+v", data)
	}
	if boundingLeft() {
		return errors.New("bounding set not empty")
	}
	if v, err := unix.PrctlRetInt(unix.PR_GET_SECUREBITS, 0, 0, 0, 0); err != nil || v != SecureBits {
		return fmt.Errorf("securebits %#x, want %#x (%v)", v, SecureBits, err)
	}
	for fd := BrokerFD + 1; fd < maxFiles; fd++ {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != unix.EBADF {
			return fmt.Errorf("unexpected open descriptor %d", fd)
		}
	}
	for fd := 0; fd < BrokerFD; fd++ {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
			return fmt.Errorf("stdio descriptor %d: %w", fd, err)
		}
	}
	return nil
}
