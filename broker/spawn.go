package broker

import (
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
	"time"

	"golang.org/x/sys/unix"

	"github.com/rex-sh/rex/ipc"
)

// WorkerPath finds the rex-worker binary: explicit, else next to the
// running executable, else the install locations. Only the standalone
// client consults $REX_WORKER (it runs with the user's own privileges); the
// daemon takes a flag.
func WorkerPath(explicit string, useEnv bool) (string, error) {
	var cands []string
	if explicit != "" {
		cands = append(cands, explicit)
	} else {
		if useEnv {
			if p := os.Getenv("REX_WORKER"); p != "" {
				cands = append(cands, p)
			}
		}
		if self, err := os.Executable(); err == nil {
			// Next to the binary (a build's bin/, the engine in libexec/rex),
			// then in libexec/rex beside its bin directory: where make
			// install puts it for any PREFIX.
			dir := filepath.Dir(self)
			cands = append(cands, filepath.Join(dir, "rex-worker"), filepath.Join(dir, "..", "libexec", "rex", "rex-worker"))
		}
		cands = append(cands, "/usr/local/libexec/rex/rex-worker", "/usr/libexec/rex/rex-worker")
	}
	for _, c := range cands {
		abs, err := filepath.Abs(c)
		if err != nil {
			continue
		}
		if st, err := os.Stat(abs); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return abs, nil
		}
	}
	return "", fmt.Errorf("rex-worker binary not found (looked in %v); build it with `make build` or pass its path", cands)
}

// uidPool hands out host uids for workers of a root broker, one per live
// run, so that concurrent workers can neither signal nor trace each other.
type uidPool struct {
	mu    sync.Mutex
	base  uint32
	size  uint32
	next  uint32
	inUse map[uint32]bool
}

func newUIDPool(base, size uint32) *uidPool {
	return &uidPool{base: base, size: size, inUse: map[uint32]bool{}}
}

func (p *uidPool) get() (uint32, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := uint32(0); i < p.size; i++ {
		u := p.base + (p.next+i)%p.size
		if !p.inUse[u] {
			p.inUse[u] = true
			p.next = (p.next + i + 1) % p.size
			return u, nil
		}
	}
	return 0, errors.New("no free worker uid")
}

func (p *uidPool) put(u uint32) {
	p.mu.Lock()
	delete(p.inUse, u)
	p.mu.Unlock()
}

// workerProc is one started worker with the broker's ends of its pipes.
// The broker reaps it with wait4(2) by pid, not through os.Process: an
// adopted worker (Adopted) has no os.Process, and os.FindProcess would
// cost a standalone run the runtime's pidfd probe (a throwaway child) on
// its critical path. The pid cannot be reused before wait reaps it.
type workerProc struct {
	pidN   int
	args   []string
	stdin  *os.File // broker writes the Start frame here
	stdout *os.File // broker reads the result frame here
	stderr *os.File
	// exited, status, usage and waitErr are the outcome of wait, once it
	// has reaped the worker.
	exited  bool
	status  syscall.WaitStatus
	usage   syscall.Rusage
	waitErr error
}

func (wp *workerProc) pid() int { return wp.pidN }

// kill sends SIGKILL; a worker already reaped is not signalled.
func (wp *workerProc) kill() error {
	if wp.exited {
		return nil
	}
	return unix.Kill(wp.pidN, unix.SIGKILL)
}

// wait reaps the worker. An exit other than 0 is an *exitError, as
// exec.Cmd.Wait's is an *exec.ExitError. Later calls give the first call's
// outcome.
func (wp *workerProc) wait() error {
	if wp.exited || wp.waitErr != nil {
		return wp.waitErr
	}
	for {
		_, err := syscall.Wait4(wp.pidN, &wp.status, 0, &wp.usage)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			wp.waitErr = os.NewSyscallError("wait4", err)
			return wp.waitErr
		}
		break
	}
	wp.exited = true
	if !wp.status.Exited() || wp.status.ExitStatus() != 0 {
		wp.waitErr = &exitError{wp.status}
	}
	return wp.waitErr
}

// exitCode is the reaped worker's exit status, or -1 (not reaped, or
// killed by a signal).
func (wp *workerProc) exitCode() int {
	if !wp.exited || !wp.status.Exited() {
		return -1
	}
	return wp.status.ExitStatus()
}

// exitError is a worker's exit other than status 0.
type exitError struct{ ws syscall.WaitStatus }

func (e *exitError) Sys() any { return e.ws }

func (e *exitError) Error() string {
	switch {
	case e.ws.Exited():
		return "exit status " + strconv.Itoa(e.ws.ExitStatus())
	case e.ws.Signaled():
		return "signal: " + e.ws.Signal().String()
	}
	return fmt.Sprintf("wait status %#x", uint32(e.ws))
}

// startWorker starts rex-worker in fresh user, pid, mount, net, ipc, uts
// and cgroup namespaces, as hostUID/hostGID mapped to root inside its own
// user namespace (where the worker needs it to build the empty root, then
// gives it up for good), in its own session, killed with the broker.
//
// With workerUserns the worker makes its user, mount and uts namespaces
// itself, at its entry point (ipc.WorkerUsernsArg): the broker starts it as
// plain hostUID/hostGID, with no capability, in the other four. Why: to
// write a new user namespace's id maps the broker must run while the child
// waits, so Go forks the whole broker for it (no CLONE_VM); without one it
// can vfork. A full fork copied the broker's page tables and then cost it
// a copy-on-write fault on every page it wrote, 3 ms of CPU per worker in
// a loaded daemon, against 1 ms for a vfork (bench/RESULTS.md, sixth
// session). The namespaces the broker makes this way belong to the host's
// user namespace, so the worker's root has no power over them; it needs
// none (it configures no network).
func startWorker(path string, hostUID, hostGID uint32, privileged, workerUserns bool, workerSock *os.File) (*workerProc, error) {
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		closeFiles(inR, inW)
		return nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		closeFiles(inR, inW, outR, outW)
		return nil, err
	}
	cmd := &exec.Cmd{
		Path: path,
		Args: []string{"rex-worker"},
		// GOMAXPROCS=1 until the worker is locked down: see worker.sandbox.
		Env:         []string{"REX_WORKER=1", "GOMAXPROCS=1"},
		Dir:         "/",
		Stdin:       inR,
		Stdout:      outW,
		Stderr:      errW,
		ExtraFiles:  []*os.File{workerSock},
		SysProcAttr: workerAttr(hostUID, hostGID, privileged, workerUserns),
	}
	if workerUserns {
		cmd.Args = append(cmd.Args, ipc.WorkerUsernsArg)
	}
	// Pdeathsig fires when the thread that forked dies, not the process:
	// fork from a thread that stays put for the call.
	runtime.LockOSThread()
	err = cmd.Start()
	runtime.UnlockOSThread()
	closeFiles(inR, outW, errW)
	if err != nil {
		closeFiles(inW, outR, errR)
		return nil, fmt.Errorf("start worker: %w", err)
	}
	// wait reaps it by pid (see workerProc): the pidfd goes now.
	pid := cmd.Process.Pid
	_ = cmd.Process.Release()
	return &workerProc{pidN: pid, args: cmd.Args, stdin: inW, stdout: outR, stderr: errR}, nil
}

// workerAttr is how startWorker clones the worker.
func workerAttr(hostUID, hostGID uint32, privileged, workerUserns bool) *syscall.SysProcAttr {
	if workerUserns {
		return &syscall.SysProcAttr{
			Cloneflags: unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWIPC | unix.CLONE_NEWCGROUP,
			// Only a root broker asks for this: it drops its supplementary
			// groups and takes the worker's uid for the exec.
			Credential: &syscall.Credential{Uid: hostUID, Gid: hostGID, Groups: []uint32{}},
			Setsid:     true,
			Pdeathsig:  syscall.SIGKILL,
		}
	}
	return &syscall.SysProcAttr{
		Cloneflags: unix.CLONE_NEWUSER | unix.CLONE_NEWNS | unix.CLONE_NEWPID |
			unix.CLONE_NEWNET | unix.CLONE_NEWIPC | unix.CLONE_NEWUTS | unix.CLONE_NEWCGROUP,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(hostUID), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(hostGID), Size: 1}},
		// A root broker drops its supplementary groups for the worker;
		// an unprivileged one cannot call setgroups in the new namespace.
		GidMappingsEnableSetgroups: privileged,
		Credential:                 &syscall.Credential{Uid: 0, Gid: 0, Groups: []uint32{}, NoSetGroups: !privileged},
		Setsid:                     true,
		Pdeathsig:                  syscall.SIGKILL,
	}
}

func closeFiles(fs ...*os.File) {
	for _, f := range fs {
		if f != nil {
			f.Close()
		}
	}
}

// readCapped reads r to EOF, keeping at most max bytes.
func readCapped(r io.Reader, max int) []byte {
	b, _ := io.ReadAll(io.LimitReader(r, int64(max)))
	_, _ = io.Copy(io.Discard, r)
	return b
}

// unprivilegedUserns reports whether the sysctls under procSys (normally
// /proc/sys) leave unprivileged processes their user namespaces: not
// turned off (Debian's unprivileged_userns_clone, max_user_namespaces 0)
// nor stripped of capabilities (Ubuntu's AppArmor restriction). A worker
// that tried on such a host would only fail its check (Config.WorkerUsernsEach)
// and cost a second start; a setting read wrong costs just that.
func unprivilegedUserns(procSys string) bool {
	for _, c := range []struct{ file, refuses string }{
		{"kernel/unprivileged_userns_clone", "0"},
		{"user/max_user_namespaces", "0"},
		{"kernel/apparmor_restrict_unprivileged_userns", "1"},
	} {
		if b, err := readSysFile(filepath.Join(procSys, c.file)); err == nil && strings.TrimSpace(string(b)) == c.refuses {
			return false
		}
	}
	return true
}

// errNoWorkerUserns is a worker that could not make its own user
// namespace (ipc.WorkerExitUserns).
var errNoWorkerUserns = errors.New("a worker could not make its own")

// workerMadeUserns waits until wp, started to make its own user namespace
// (Config.WorkerUsernsEach), has made it and written its id maps, or has
// exited. Its entry point does that within microseconds of the exec, so
// this rarely waits: the namespace differs from the broker's and the gid
// map (written last) is there. A worker that exited (or cannot be checked)
// is reaped here; one that exited as ipc.WorkerExitUserns gives
// errNoWorkerUserns.
func workerMadeUserns(wp *workerProc, limit time.Duration) error {
	pid := wp.pid()
	own, err := os.Readlink("/proc/self/ns/user")
	if err != nil {
		return err
	}
	deadline := time.Now().Add(limit)
	for {
		// Exited? WNOWAIT leaves it to be reaped by killWait; the kernel
		// zeroes info when no child of that pid has exited.
		var info unix.Siginfo
		if err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil); err != nil || info.Signo != 0 {
			killWait(wp)
			if wp.exitCode() == ipc.WorkerExitUserns {
				return errNoWorkerUserns
			}
			return fmt.Errorf("worker exited at start: %v", wp.waitErr)
		}
		// A zombie keeps its credentials, and so this link: the check
		// for exit comes first.
		theirs, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/user", pid))
		if err != nil {
			killWait(wp)
			return fmt.Errorf("worker's user namespace: %w", err)
		}
		if theirs != own {
			if m, err := os.ReadFile(fmt.Sprintf("/proc/%d/gid_map", pid)); err == nil && len(m) > 0 {
				return nil
			}
		}
		if time.Now().After(deadline) {
			killWait(wp)
			return fmt.Errorf("worker made no user namespace within %v", limit)
		}
		// Sleep, not poll: the worker needs the CPU to get there. And
		// not time.Sleep, whose timers shorter than a millisecond wake
		// no sooner than the runtime's next millisecond tick.
		_ = unix.Nanosleep(&unix.Timespec{Nsec: 50_000}, nil)
	}
}

// probeWorkerUserns starts one worker that makes its own user namespace
// (startWorker's workerUserns) and gives it no script: it gets through its
// whole lock-down, finds its stdin closed and exits with worker.ExitStart.
// Anything else (ExitUserns: unprivileged user namespaces are refused here;
// a worker without the entry point) is the reason to keep making the
// namespace in the broker. It runs once, as a root Runner starts.
func (r *Runner) probeWorkerUserns() error {
	if runtime.GOARCH != "amd64" {
		return errors.New("rex-worker has its own entry point on amd64 only")
	}
	uid, err := r.uids.get()
	if err != nil {
		return err
	}
	defer r.uids.put(uid)
	brokerEnd, workerEnd, err := ipc.SocketPair()
	if err != nil {
		return err
	}
	defer brokerEnd.Close()
	wp, err := startWorker(r.cfg.WorkerPath, uid, uid, true, true, workerEnd)
	workerEnd.Close()
	if err != nil {
		return err
	}
	wp.stdin.Close()
	go func() { _, _ = io.Copy(io.Discard, wp.stdout) }()
	kill := time.AfterFunc(10*time.Second, func() { _ = wp.kill() })
	msg := strings.TrimSpace(string(readCapped(wp.stderr, 4<<10))) // EOF: the worker is gone
	err = wp.wait()
	kill.Stop()
	closeFiles(wp.stdout, wp.stderr)
	if wp.exitCode() == ipc.WorkerExitStart {
		return nil
	}
	if msg == "" {
		msg = fmt.Sprint(err)
	}
	return fmt.Errorf("%w: %s", errNoWorkerUserns, msg)
}
