package seccomp

import "golang.org/x/sys/unix"

// Action is what the filter does with a matching syscall. Anything not in
// the profile gets the default action, KillProcess.
type Action int

// Actions.
const (
	// Allow lets the call through.
	Allow Action = iota
	// Errno fails the call with Rule.Errno, so that library code probing
	// the filesystem or the network sees an ordinary error and goes on.
	Errno
	// KillProcess kills the whole worker with SIGSYS. It is the default
	// action; listing a syscall with it only documents an intent.
	KillProcess
)

func (a Action) String() string {
	switch a {
	case Allow:
		return "allow"
	case Errno:
		return "errno"
	case KillProcess:
		return "kill"
	}
	return "action(?)"
}

// Op compares one syscall argument.
type Op int

// Comparison operators. Only the ones the profile needs.
const (
	// Eq: arg == Value.
	Eq Op = iota
	// MaskedEq: arg & Mask == Value.
	MaskedEq
)

// SelfPID stands for the worker's own pid in a Cond.Value; Build replaces it
// with os.Getpid(). The profile stays pure data although the pid is only
// known at run time.
const SelfPID = ^uint64(0)

// Cond is one condition on a syscall argument. All conditions of a Rule must
// hold for it to match.
type Cond struct {
	Arg   uint // argument index, 0..5
	Op    Op
	Mask  uint64 // for MaskedEq
	Value uint64
}

// Rule is one line of the profile. A syscall may appear on several lines
// (one per allowed argument value); a call matches if any of them matches.
type Rule struct {
	Name   string
	Action Action
	Errno  unix.Errno // for Errno
	Args   []Cond
	Why    string
}

// threadFlags are the clone flags that make a thread rather than a process:
// exactly the Go runtime's (rex-worker has no cgo, hence no glibc thread
// start). Every other flag in cloneMask (namespaces, vfork, ptrace, pidfd,
// a new parent) must be clear.
const (
	threadFlags = unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND |
		unix.CLONE_THREAD | unix.CLONE_SYSVSEM
	cloneMask = threadFlags | unix.CLONE_NEWNS | unix.CLONE_NEWCGROUP | unix.CLONE_NEWUTS |
		unix.CLONE_NEWIPC | unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET |
		unix.CLONE_NEWTIME | unix.CLONE_PTRACE | unix.CLONE_VFORK | unix.CLONE_PARENT |
		unix.CLONE_UNTRACED | unix.CLONE_PIDFD | unix.CLONE_IO | unix.CLONE_CLEAR_SIGHAND |
		0xff // the exit signal: a thread has none
)

// arch_prctl codes (asm/prctl.h), missing from x/sys/unix.
const (
	archSetFS = 0x1002
	archGetFS = 0x1003
)

var (
	argIs = func(arg uint, v uint64) []Cond { return []Cond{{Arg: arg, Op: Eq, Value: v}} }
	self  = argIs(0, SelfPID)
)

// profile is the worker's allowlist: the Go runtime (without cgo, so no
// glibc thread start: mprotect, brk, mremap, rseq and set_robust_list went
// with it), Risor, and the broker socket. Path-taking calls fail with
// EACCES (Chromium's fs_denied_errno) because the worker has no
// filesystem: Go and Risor probe paths (os.Executable, time zones, TMPDIR)
// and must get an error, not a SIGSYS. Found with strace -f on the worker
// running Risor, and pinned by the tests.
var profile = []Rule{
	// Memory.
	{Name: "mmap", Action: Allow, Args: []Cond{{Arg: 2, Op: MaskedEq, Mask: unix.PROT_EXEC, Value: 0}}, Why: "Go heap and stacks; never executable: the worker runs no native code it did not start with"},
	{Name: "munmap", Action: Allow, Why: "Go returns memory"},
	{Name: "madvise", Action: Allow, Why: "Go scavenger (MADV_DONTNEED/FREE), huge page hints"},

	// Threads and scheduling.
	{Name: "clone", Action: Allow, Args: []Cond{{Arg: 0, Op: MaskedEq, Mask: cloneMask, Value: threadFlags}}, Why: "new threads only: no fork, no namespaces, no vfork"},
	{Name: "clone3", Action: Errno, Errno: unix.ENOSYS, Why: "its flags are behind a pointer seccomp cannot read; Go does not use it, and ENOSYS makes a caller that tries it first fall back to clone, whose flags are checked"},
	{Name: "futex", Action: Allow, Why: "Go locks, thread parking"},
	{Name: "arch_prctl", Action: Allow, Args: argIs(0, archSetFS), Why: "Go sets the TLS base of new threads"},
	{Name: "arch_prctl", Action: Allow, Args: argIs(0, archGetFS), Why: "TLS base read back"},
	{Name: "sched_yield", Action: Allow, Why: "Go spinning locks"},
	{Name: "sched_getaffinity", Action: Allow, Why: "Go sizes GOMAXPROCS (runtime and Risor's runtime queries)"},
	{Name: "gettid", Action: Allow, Why: "Go signal delivery to a thread"},
	{Name: "getpid", Action: Allow, Why: "Go signal delivery (tgkill needs its own tgid)"},
	{Name: "tgkill", Action: Allow, Args: self, Why: "Go async preemption (SIGURG) to its own threads only"},
	{Name: "kill", Action: Allow, Args: self, Why: "Go re-raises a fatal signal on itself"},
	{Name: "exit", Action: Allow, Why: "thread exit"},
	{Name: "exit_group", Action: Allow, Why: "process exit"},
	{Name: "restart_syscall", Action: Allow, Why: "kernel restarts an interrupted sleep after a signal"},

	// Signals.
	{Name: "rt_sigaction", Action: Allow, Why: "Go installs handlers at start and for os/signal"},
	{Name: "rt_sigprocmask", Action: Allow, Why: "Go masks signals around thread creation"},
	{Name: "rt_sigreturn", Action: Allow, Why: "return from every signal handler"},
	{Name: "sigaltstack", Action: Allow, Why: "Go gives every thread a signal stack"},

	// Time.
	{Name: "clock_gettime", Action: Allow, Why: "time.Now when the vDSO is not used"},
	{Name: "clock_getres", Action: Allow, Why: "time resolution queries"},
	{Name: "gettimeofday", Action: Allow, Why: "time fallback without vDSO"},
	{Name: "nanosleep", Action: Allow, Why: "Go usleep"},

	// Descriptors the worker already holds: stdio pipes, the broker socket,
	// files the broker passed (whose access mode it chose).
	{Name: "read", Action: Allow, Why: "stdin, passed files"},
	{Name: "write", Action: Allow, Why: "stdout/stderr, files passed for writing"},
	{Name: "readv", Action: Allow, Why: "vectored reads"},
	{Name: "pread64", Action: Allow, Why: "positioned reads of passed files"},
	{Name: "pwrite64", Action: Allow, Why: "positioned writes of passed files"},
	{Name: "lseek", Action: Allow, Why: "seek in passed files"},
	{Name: "fstat", Action: Allow, Why: "os.File.Stat on a passed fd; no path"},
	{Name: "ftruncate", Action: Allow, Why: "os.File.Truncate; the kernel refuses it on read-only fds"},
	{Name: "fsync", Action: Allow, Why: "os.File.Sync on passed files"},
	{Name: "fdatasync", Action: Allow, Why: "os.File.Sync on passed files"},
	{Name: "close", Action: Allow, Why: "every fd"},
	{Name: "dup", Action: Allow, Why: "duplicating an fd the worker holds grants nothing new"},
	{Name: "fcntl", Action: Allow, Args: argIs(1, unix.F_GETFD), Why: "close-on-exec query"},
	{Name: "fcntl", Action: Allow, Args: argIs(1, unix.F_SETFD), Why: "close-on-exec"},
	{Name: "fcntl", Action: Allow, Args: argIs(1, unix.F_GETFL), Why: "os.NewFile checks O_NONBLOCK"},
	{Name: "fcntl", Action: Allow, Args: argIs(1, unix.F_SETFL), Why: "Go sets O_NONBLOCK on pollable fds"},
	{Name: "fcntl", Action: Allow, Args: argIs(1, unix.F_DUPFD_CLOEXEC), Why: "Go dups fds close-on-exec"},
	{Name: "sendmsg", Action: Allow, Why: "requests to the broker on the socketpair"},
	{Name: "recvmsg", Action: Allow, Why: "replies and SCM_RIGHTS fds from the broker"},

	// Go's network poller, used for the broker socket and passed pipes.
	{Name: "epoll_create1", Action: Allow, Why: "Go netpoll init"},
	{Name: "epoll_ctl", Action: Allow, Why: "Go netpoll registration"},
	{Name: "epoll_pwait", Action: Allow, Why: "Go netpoll"},
	{Name: "epoll_pwait2", Action: Allow, Why: "Go netpoll"},
	{Name: "epoll_wait", Action: Allow, Why: "Go netpoll"},
	{Name: "eventfd2", Action: Allow, Why: "Go netpoll wakeup"},
	{Name: "pipe2", Action: Allow, Why: "Go netpoll wakeup on older runtimes; an anonymous pipe reaches nothing"},

	// Harmless queries the runtime and libraries make.
	{Name: "getrandom", Action: Allow, Why: "Go map seeds, crypto/rand, Risor rand"},
	{Name: "uname", Action: Allow, Why: "Go checks the kernel version; the UTS namespace shows only \"rex\""},
	{Name: "getuid", Action: Allow, Why: "identity inside the user namespace (0)"},
	{Name: "geteuid", Action: Allow, Why: "identity inside the user namespace (0)"},
	{Name: "getgid", Action: Allow, Why: "identity inside the user namespace (0)"},
	{Name: "getegid", Action: Allow, Why: "identity inside the user namespace (0)"},
	{Name: "getcwd", Action: Allow, Why: "os.Getwd; the root is empty"},
	{Name: "getrlimit", Action: Allow, Why: "limit queries"},
	{Name: "prlimit64", Action: Allow, Args: argIs(2, 0), Why: "limit queries only: a nil new limit"},
	{Name: "capget", Action: Allow, Why: "capability queries (all empty)"},
	{Name: "prctl", Action: Allow, Args: argIs(0, unix.PR_GET_NO_NEW_PRIVS), Why: "posture self-check"},
	{Name: "prctl", Action: Allow, Args: argIs(0, unix.PR_GET_SECCOMP), Why: "posture self-check"},
	{Name: "prctl", Action: Allow, Args: argIs(0, unix.PR_GET_DUMPABLE), Why: "posture self-check"},

	// The filesystem does not exist for the worker: fail, don't kill.
	{Name: "open", Action: Errno, Errno: unix.EACCES, Why: "fs_denied_errno: files come from the broker"},
	{Name: "openat", Action: Errno, Errno: unix.EACCES, Why: "fs_denied_errno: files come from the broker"},
	{Name: "openat2", Action: Errno, Errno: unix.EACCES, Why: "fs_denied_errno: files come from the broker"},
	{Name: "creat", Action: Errno, Errno: unix.EACCES, Why: "fs_denied_errno"},
	{Name: "stat", Action: Errno, Errno: unix.EACCES, Why: "fs_denied_errno: Go and Risor probe paths"},
	{Name: "lstat", Action: Errno, Errno: unix.EACCES, Why: "fs_denied_errno"},
	{Name: "newfstatat", Action: Errno, Errno: unix.EACCES, Why: "fs_denied_errno (os.Stat; fstat covers fds)"},
	{Name: "statx", Action: Errno, Errno: unix.EACCES, Why: "fs_denied_errno"},
	{Name: "access", Action: Errno, Errno: unix.EACCES, Why: "fs_denied_errno"},
	{Name: "faccessat", Action: Errno, Errno: unix.EACCES, Why: "fs_denied_errno"},
	{Name: "faccessat2", Action: Errno, Errno: unix.EACCES, Why: "fs_denied_errno"},
	{Name: "readlink", Action: Errno, Errno: unix.EACCES, Why: "fs_denied_errno (os.Executable)"},
	{Name: "readlinkat", Action: Errno, Errno: unix.EACCES, Why: "fs_denied_errno"},
	{Name: "socket", Action: Errno, Errno: unix.EPERM, Why: "no network: the broker does it (net.* of the sdk)"},
	{Name: "socketpair", Action: Errno, Errno: unix.EPERM, Why: "no new sockets"},
	{Name: "ioctl", Action: Errno, Errno: unix.ENOTTY, Why: "terminal probes fail as on a pipe; no TIOCSTI on inherited ttys"},

	// Explicit kills, named so that reviews see they are intended. The
	// default action kills everything else too.
	{Name: "execve", Action: KillProcess, Why: "no exec after lockdown"},
	{Name: "execveat", Action: KillProcess, Why: "no exec after lockdown"},
	{Name: "ptrace", Action: KillProcess, Why: "no debugging of anything"},
	{Name: "mount", Action: KillProcess, Why: "kernel attack surface"},
	{Name: "unshare", Action: KillProcess, Why: "user namespaces are kernel attack surface"},
	{Name: "setns", Action: KillProcess, Why: "no namespace changes"},
	{Name: "bpf", Action: KillProcess, Why: "kernel attack surface"},
	{Name: "io_uring_setup", Action: KillProcess, Why: "io_uring ops bypass seccomp"},
	{Name: "perf_event_open", Action: KillProcess, Why: "kernel attack surface"},
	{Name: "userfaultfd", Action: KillProcess, Why: "race amplifier for kernel exploits"},
	{Name: "keyctl", Action: KillProcess, Why: "kernel keyrings are not namespaced"},
}

// Profile returns a copy of the worker's allowlist.
func Profile() []Rule {
	out := make([]Rule, len(profile))
	for i, r := range profile {
		r.Args = append([]Cond(nil), r.Args...)
		out[i] = r
	}
	return out
}
