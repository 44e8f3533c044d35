package seccomp

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The seccomp profile check (SECURITY-TESTS H09 and issue 6): every
// syscall the profile allows is made once under the real filter and is not
// killed; every errno rule answers with its errno; every H09 syscall is
// killed. A syscall added to the profile without a probe here fails the
// check, so the list cannot drift from the profile. Run it after every Go
// upgrade: a new runtime may need a syscall the profile lacks (the probes
// and TestAllowedWorkload show it) or stop needing one.

const bad = ^uintptr(0) // an fd, pointer or length no call accepts

func selfIDs() (pid, tid uintptr) { return uintptr(unix.Getpid()), uintptr(unix.Gettid()) }

// allowedProbes gives, for each allowed syscall, one or more argument lists
// that make the call harmlessly (bad fds and pointers: EBADF/EFAULT), or a
// function for calls that can only be made meaningfully in context.
var allowedProbes = map[string][]func() syscall.Errno{
	"mmap":    {call(unix.SYS_MMAP, 0, 4096, unix.PROT_READ, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS, bad, 0)},
	"munmap":  {call(unix.SYS_MUNMAP, 0, 0)},
	"madvise": {call(unix.SYS_MADVISE, 0, 0, 0)},
	// A new thread: Go makes it with clone when a locked goroutine blocks.
	"clone": {newThread},
	"futex": {call(unix.SYS_FUTEX, 0, 0, 0, 0, 0, 0)},
	"arch_prctl": {
		call(unix.SYS_ARCH_PRCTL, archGetFS, 0),
		// ARCH_SET_FS is made by the runtime for every new thread.
		newThread,
	},
	"sched_yield":       {call(unix.SYS_SCHED_YIELD)},
	"sched_getaffinity": {call(unix.SYS_SCHED_GETAFFINITY, 0, 0, 0)},
	"gettid":            {call(unix.SYS_GETTID)},
	"getpid":            {call(unix.SYS_GETPID)},
	"tgkill": {func() syscall.Errno {
		pid, tid := selfIDs()
		return raw(unix.SYS_TGKILL, pid, tid, 0)
	}},
	"kill": {func() syscall.Errno {
		pid, _ := selfIDs()
		return raw(unix.SYS_KILL, pid, 0)
	}},
	// A locked goroutine that returns takes its thread with it (exit).
	"exit": {func() syscall.Errno {
		done := make(chan struct{})
		go func() { runtime.LockOSThread(); close(done) }()
		<-done
		time.Sleep(10 * time.Millisecond)
		return 0
	}},
	// The helper's own os.Exit is the probe (a kill shows as SIGSYS).
	"exit_group":      {func() syscall.Errno { return 0 }},
	"restart_syscall": {call(unix.SYS_RESTART_SYSCALL)},
	"rt_sigaction":    {call(unix.SYS_RT_SIGACTION, 0, 0, 0, 8)},
	"rt_sigprocmask":  {call(unix.SYS_RT_SIGPROCMASK, unix.SIG_BLOCK, 0, 0, 8)},
	// Returning from a signal handler: SIGURG is Go's preemption signal.
	"rt_sigreturn": {func() syscall.Errno {
		pid, tid := selfIDs()
		e := raw(unix.SYS_TGKILL, pid, tid, uintptr(unix.SIGURG))
		time.Sleep(10 * time.Millisecond)
		return e
	}},
	"sigaltstack":   {call(unix.SYS_SIGALTSTACK, 0, 0)},
	"clock_gettime": {call(unix.SYS_CLOCK_GETTIME, 0, 0)},
	"clock_getres":  {call(unix.SYS_CLOCK_GETRES, 0, 0)},
	"gettimeofday":  {call(unix.SYS_GETTIMEOFDAY, 0, 0)},
	"nanosleep":     {call(unix.SYS_NANOSLEEP, 0, 0)},
	"read":          {call(unix.SYS_READ, bad, 0, 0)},
	"write":         {call(unix.SYS_WRITE, bad, 0, 0)},
	"readv":         {call(unix.SYS_READV, bad, 0, 0)},
	"pread64":       {call(unix.SYS_PREAD64, bad, 0, 0, 0)},
	"pwrite64":      {call(unix.SYS_PWRITE64, bad, 0, 0, 0)},
	"lseek":         {call(unix.SYS_LSEEK, bad, 0, 0)},
	"fstat":         {call(unix.SYS_FSTAT, bad, 0)},
	"ftruncate":     {call(unix.SYS_FTRUNCATE, bad, 0)},
	"fsync":         {call(unix.SYS_FSYNC, bad)},
	"fdatasync":     {call(unix.SYS_FDATASYNC, bad)},
	"close":         {call(unix.SYS_CLOSE, bad)},
	"dup":           {call(unix.SYS_DUP, bad)},
	"fcntl": {
		call(unix.SYS_FCNTL, bad, unix.F_GETFD),
		call(unix.SYS_FCNTL, bad, unix.F_SETFD),
		call(unix.SYS_FCNTL, bad, unix.F_GETFL),
		call(unix.SYS_FCNTL, bad, unix.F_SETFL),
		call(unix.SYS_FCNTL, bad, unix.F_DUPFD_CLOEXEC),
	},
	"sendmsg":       {call(unix.SYS_SENDMSG, bad, 0, 0)},
	"recvmsg":       {call(unix.SYS_RECVMSG, bad, 0, 0)},
	"epoll_create1": {call(unix.SYS_EPOLL_CREATE1, 0)},
	"epoll_ctl":     {call(unix.SYS_EPOLL_CTL, bad, 0, 0, 0)},
	"epoll_pwait":   {call(unix.SYS_EPOLL_PWAIT, bad, 0, 0, 0, 0, 0)},
	"epoll_pwait2":  {call(unix.SYS_EPOLL_PWAIT2, bad, 0, 0, 0, 0, 0)},
	"epoll_wait":    {call(unix.SYS_EPOLL_WAIT, bad, 0, 0, 0)},
	"eventfd2":      {call(unix.SYS_EVENTFD2, 0, unix.EFD_CLOEXEC)},
	"pipe2":         {call(unix.SYS_PIPE2, 0, 0)},
	"getrandom":     {call(unix.SYS_GETRANDOM, 0, 0, 0)},
	"uname":         {call(unix.SYS_UNAME, 0)},
	"getuid":        {call(unix.SYS_GETUID)},
	"geteuid":       {call(unix.SYS_GETEUID)},
	"getgid":        {call(unix.SYS_GETGID)},
	"getegid":       {call(unix.SYS_GETEGID)},
	"getcwd":        {call(unix.SYS_GETCWD, 0, 0)},
	"getrlimit":     {call(unix.SYS_GETRLIMIT, unix.RLIMIT_NOFILE, 0)},
	"prlimit64":     {call(unix.SYS_PRLIMIT64, 0, unix.RLIMIT_NOFILE, 0, 0)},
	"capget":        {call(unix.SYS_CAPGET, 0, 0)},
	"prctl": {
		call(unix.SYS_PRCTL, unix.PR_GET_NO_NEW_PRIVS),
		call(unix.SYS_PRCTL, unix.PR_GET_SECCOMP),
		call(unix.SYS_PRCTL, unix.PR_GET_DUMPABLE),
	},
}

// h09 is SECURITY-TESTS H09: each must kill the worker.
var h09 = []string{
	"mount", "umount2", "pivot_root", "fsopen", "fsmount", "open_tree", "move_mount", "mount_setattr",
	"bpf", "perf_event_open", "userfaultfd", "keyctl", "add_key", "open_by_handle_at", "kexec_load",
	"init_module", "personality", "modify_ldt", "chroot",
}

func call(nr uintptr, args ...uintptr) func() syscall.Errno {
	return func() syscall.Errno { return raw(nr, args...) }
}

func raw(nr uintptr, args ...uintptr) syscall.Errno {
	var a [6]uintptr
	copy(a[:], args)
	_, _, e := unix.RawSyscall6(nr, a[0], a[1], a[2], a[3], a[4], a[5])
	return e
}

// newThread makes the runtime start an OS thread after the filter is in.
func newThread() syscall.Errno {
	var ready, release = make(chan struct{}), make(chan struct{})
	for i := 0; i < 4; i++ {
		go func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			ready <- struct{}{}
			<-release
		}()
		<-ready
	}
	close(release)
	return 0
}

// helperProfile runs in the child: "allow:NAME:I" makes probe I of NAME,
// "any:NAME:NR" makes system call NR (NAME's number, which the parent asks
// libseccomp for) with bad arguments; both after Install.
func helperProfile(spec string) int {
	f := strings.Split(spec, ":")
	var fn func() syscall.Errno
	switch {
	case len(f) == 3 && f[0] == "allow":
		var i int
		fmt.Sscan(f[2], &i)
		if ps := allowedProbes[f[1]]; i < len(ps) {
			fn = ps[i]
		}
	case len(f) == 3 && f[0] == "any":
		nr, err := strconv.Atoi(f[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		fn = call(uintptr(nr), bad, bad, bad, bad, bad, bad)
	}
	if fn == nil {
		fmt.Fprintf(os.Stderr, "unknown profile probe %q\n", spec)
		return 2
	}
	if err := Install(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	fmt.Printf("errno=%d\n", int(fn()))
	return 0
}
