package host

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/rex-sh/rex/ipc"
)

// Proc is what /proc says about one process: the attributes Cedar sees
// (Name, Username, Command) and the figures proc.list reports. Start is the
// start time in clock ticks since boot; with the pid it names the process
// for as long as the machine runs.
type Proc struct {
	PID, PPID int
	Name      string
	Username  string
	UID       uint32
	Command   string
	State     string
	RSSKB     int64
	Start     uint64
}

// noProc is what reading a process that has gone (or never was) gives.
func noProc(pid int) error {
	return ipc.Errorf(ipc.CodeNotFound, "process %d: no such process", pid)
}

// PIDs lists the pids in /proc, ascending.
func PIDs() ([]int, error) {
	d, err := os.Open("/proc")
	if err != nil {
		return nil, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	pids := make([]int, 0, len(names))
	for _, n := range names {
		if pid, err := strconv.Atoi(n); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	sort.Ints(pids)
	return pids, nil
}

// ReadProc reads one process from /proc. A process that is gone gives an
// error with code CodeNotFound.
func ReadProc(pid int) (Proc, error) {
	if pid <= 0 {
		return Proc{}, noProc(pid)
	}
	dir := "/proc/" + strconv.Itoa(pid)
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return Proc{}, noProc(pid)
	}
	p, err := parseStat(pid, stat)
	if err != nil {
		return Proc{}, err
	}
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return Proc{}, noProc(pid)
	}
	// The owner of /proc/<pid> is the process's effective uid (root for
	// non-dumpable processes): the user the process acts as.
	p.UID = st.Uid
	p.Username = UserName(st.Uid)
	if p.Username == "" {
		p.Username = strconv.FormatUint(uint64(st.Uid), 10)
	}
	if cmd, err := os.ReadFile(dir + "/cmdline"); err == nil {
		cmd = bytes.TrimRight(cmd, "\x00")
		args := strings.Split(strings.ToValidUTF8(string(cmd), "?"), "\x00")
		// Redact before cutting, so a cut cannot split a secret out of
		// the pattern that would have caught it.
		line := strings.Join(RedactCommand(args), " ")
		if len(line) > ipc.MaxProcCommand {
			line = strings.ToValidUTF8(line[:ipc.MaxProcCommand], "")
		}
		p.Command = line
	}
	return p, nil
}

// parseStat reads /proc/<pid>/stat. The name sits in parentheses and may
// itself hold spaces and parentheses, so fields are counted from the last
// ')'.
func parseStat(pid int, b []byte) (Proc, error) {
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return Proc{}, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	f := strings.Fields(string(b[end+1:]))
	// f[0] is field 3 (state); ppid is field 4, starttime 22, rss 24.
	if len(f) < 22 {
		return Proc{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	ppid, _ := strconv.Atoi(f[1])
	start, _ := strconv.ParseUint(f[19], 10, 64)
	rss, _ := strconv.ParseInt(f[21], 10, 64)
	return Proc{
		PID: pid, PPID: ppid, Name: strings.ToValidUTF8(string(b[open+1:end]), "?"),
		State: f[0], Start: start, RSSKB: rss * int64(os.Getpagesize()) / 1024,
	}, nil
}

// PIDFD is a process pinned by a pidfd: Proc describes that very process,
// and Signal can only ever reach it, whatever happens to its pid later.
type PIDFD struct {
	fd   int
	Proc Proc
}

// OpenPID takes a pidfd on pid, then reads the process. The read is known to
// describe the pidfd's process because the process is still alive after it
// (a pid is not reused while its process exists, even as a zombie).
func OpenPID(pid int) (*PIDFD, error) {
	if pid <= 0 {
		return nil, noProc(pid)
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return nil, noProc(pid)
		}
		return nil, &os.PathError{Op: "pidfd_open", Path: strconv.Itoa(pid), Err: err}
	}
	p, err := ReadProc(pid)
	if err == nil {
		err = unix.PidfdSendSignal(fd, 0, nil, 0)
		if errors.Is(err, unix.EPERM) {
			err = nil // alive, only not ours to signal
		}
	}
	if err != nil {
		unix.Close(fd)
		return nil, noProc(pid)
	}
	return &PIDFD{fd: fd, Proc: p}, nil
}

// Signal delivers sig to the pinned process.
func (p *PIDFD) Signal(sig unix.Signal) error {
	if err := unix.PidfdSendSignal(p.fd, sig, nil, 0); err != nil {
		return &os.PathError{Op: "pidfd_send_signal", Path: strconv.Itoa(p.Proc.PID), Err: err}
	}
	return nil
}

// Close releases the pidfd.
func (p *PIDFD) Close() error { return unix.Close(p.fd) }

// FD is one open descriptor of a process.
type FD struct {
	FD     int
	Target string
}

// FDs lists the descriptors of the process pinned by p, at most max. The
// listing is checked against the pidfd afterwards, so that it cannot be a
// newer process's that took the pid.
func (p *PIDFD) FDs(max int) ([]FD, bool, error) {
	fds, trunc, err := ListFDs(p.Proc.PID, max)
	if err != nil {
		return nil, false, err
	}
	if err := unix.PidfdSendSignal(p.fd, 0, nil, 0); err != nil && !errors.Is(err, unix.EPERM) {
		return nil, false, noProc(p.Proc.PID)
	}
	return fds, trunc, nil
}

// ListFDs reads /proc/<pid>/fd, ascending, at most max entries.
func ListFDs(pid, max int) ([]FD, bool, error) {
	dir := "/proc/" + strconv.Itoa(pid) + "/fd"
	d, err := os.Open(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, false, noProc(pid)
		}
		return nil, false, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, false, err
	}
	nums := make([]int, 0, len(names))
	for _, n := range names {
		if v, err := strconv.Atoi(n); err == nil {
			nums = append(nums, v)
		}
	}
	sort.Ints(nums)
	trunc := len(nums) > max
	if trunc {
		nums = nums[:max]
	}
	out := make([]FD, 0, len(nums))
	for _, n := range nums {
		t, err := os.Readlink(dir + "/" + strconv.Itoa(n))
		if errors.Is(err, os.ErrPermission) {
			// The kernel's ptrace access check refused the broker (a
			// process in another user namespace, say): say so rather
			// than report an empty table.
			return nil, false, ipc.Errorf(ipc.CodeIO, "process %d: its descriptors cannot be read", pid)
		}
		if err != nil {
			continue // closed meanwhile
		}
		out = append(out, FD{FD: n, Target: strings.ToValidUTF8(t, "?")})
	}
	return out, trunc, nil
}
