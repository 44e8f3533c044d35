package broker

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rex-sh/rex/ipc"
)

// Adopted is a worker started for a Runner before the Runner existed: a
// root standalone rex-exec's entry point starts it before its own Go
// runtime, so that the two programs start side by side
// (cmd/rex-exec/entry_engine_amd64.s). It carries the worker's pid and the
// Runner's ends of its socket (a raw descriptor) and of its stdin, stdout
// and stderr pipes, all close-on-exec.
//
// Nothing about it is taken on trust. Before a run gets it, the Runner
// checks from outside that it is what startWorker would have made with
// the worker making its own user namespace (Config.WorkerUsernsEach): a
// child of this process, running the Runner's worker binary as
// ["rex-worker", "--userns"], as the uid and gid the run was given and no
// supplementary group, leader of its own session, pid 1 of its own pid
// namespace, in net, ipc, cgroup and user namespaces of its own with its id
// maps written, on a SOCK_SEQPACKET socket and three pipes. A worker that
// fails any of it is killed, and the run gets one the Runner starts.
type Adopted struct {
	PID                   int
	Sock                  int
	Stdin, Stdout, Stderr *os.File
}

// Discard kills the worker (when it is this process's child) and closes
// the descriptors.
func (a *Adopted) Discard() {
	if isChild(a.PID) {
		wp := &workerProc{pidN: a.PID}
		_ = wp.kill()
		_ = wp.wait()
	}
	unix.Close(a.Sock)
	closeFiles(a.Stdin, a.Stdout, a.Stderr)
}

// errNotAdoptable is an Adopted worker for a Runner whose workers do not
// make their own user namespace (unprivileged ones are refused on this
// host, or the Runner is not root).
var errNotAdoptable = errors.New("is not for this Runner: its workers do not make their own user namespace")

// adopted checks a (see Adopted) for a run given uid, and returns it as a
// started worker; on error it has discarded it.
func (r *Runner) adopted(a *Adopted, uid uint32) (*workerProc, error) {
	if !r.privileged || !r.workerUserns.Load() {
		a.Discard()
		return nil, errNotAdoptable
	}
	if !isChild(a.PID) {
		a.Discard()
		return nil, fmt.Errorf("(pid %d) is not a child of this process", a.PID)
	}
	wp := &workerProc{pidN: a.PID, args: []string{"rex-worker", ipc.WorkerUsernsArg}, stdin: a.Stdin, stdout: a.Stdout, stderr: a.Stderr}
	// Its entry point makes the user namespace after the exec, and so
	// after everything made before it: once that is done, all is there
	// to check. workerMadeUserns reaps a worker that exited.
	if err := workerMadeUserns(wp, 5*time.Second); err != nil {
		unix.Close(a.Sock)
		return nil, err
	}
	if err := checkAdopted(a, uid, r.cfg.WorkerPath); err != nil {
		killWait(wp)
		unix.Close(a.Sock)
		return nil, err
	}
	return wp, nil
}

// isChild reports whether pid is a child of this process (alive, or
// exited and not yet reaped).
func isChild(pid int) bool {
	if pid <= 0 {
		return false
	}
	var info unix.Siginfo
	return unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil) == nil
}

// checkAdopted is adopted's check of everything but the user namespace.
func checkAdopted(a *Adopted, uid uint32, workerPath string) error {
	proc := fmt.Sprintf("/proc/%d/", a.PID)
	if exe, err := os.Readlink(proc + "exe"); err != nil || exe != workerPath {
		return fmt.Errorf("runs %q (%v), not %s", exe, err, workerPath)
	}
	if cmd, err := os.ReadFile(proc + "cmdline"); err != nil || string(cmd) != "rex-worker\x00"+ipc.WorkerUsernsArg+"\x00" {
		return fmt.Errorf("has arguments %q (%v)", cmd, err)
	}
	st, err := os.ReadFile(proc + "status")
	if err != nil {
		return err
	}
	ids := strconv.FormatUint(uint64(uid), 10)
	want := map[string]string{
		"Uid":    strings.Repeat(ids+"\t", 3) + ids,
		"Gid":    strings.Repeat(ids+"\t", 3) + ids,
		"Groups": "",
		"NSpid":  strconv.Itoa(a.PID) + "\t1",
		"NSsid":  strconv.Itoa(a.PID) + "\t1",
	}
	for _, line := range strings.Split(string(st), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if w, known := want[k]; ok && known {
			if got := strings.TrimSpace(v); got != w {
				return fmt.Errorf("has %s %q, want %q", k, got, w)
			}
			delete(want, k)
		}
	}
	if len(want) > 0 {
		return fmt.Errorf("status shows no %v", want)
	}
	for _, ns := range []string{"net", "ipc", "cgroup", "pid", "user", "mnt"} {
		own, err1 := os.Readlink("/proc/self/ns/" + ns)
		theirs, err2 := os.Readlink(proc + "ns/" + ns)
		if err1 != nil || err2 != nil || own == theirs {
			return fmt.Errorf("is in this process's %s namespace (%v, %v)", ns, err1, err2)
		}
	}
	if typ, err := unix.GetsockoptInt(a.Sock, unix.SOL_SOCKET, unix.SO_TYPE); err != nil || typ != unix.SOCK_SEQPACKET {
		return fmt.Errorf("socket of type %d (%v)", typ, err)
	}
	for _, f := range []*os.File{a.Stdin, a.Stdout, a.Stderr} {
		// Stat, not Fd: Fd would make the descriptor blocking.
		if fi, err := f.Stat(); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
			return fmt.Errorf("%s is not a pipe (%v)", f.Name(), err)
		}
	}
	return nil
}
