package broker

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rex-sh/rex/ipc"
)

// cgroupRoot is where the controllers are mounted; tests may point it
// elsewhere.
var cgroupRoot = "/sys/fs/cgroup"

// cgroupMode says which hierarchy the host offers.
type cgroupMode int

const (
	cgroupNone cgroupMode = iota
	cgroupV1
	cgroupV2
)

func (m cgroupMode) String() string {
	switch m {
	case cgroupV1:
		return "v1"
	case cgroupV2:
		return "v2"
	}
	return "none"
}

// detectCgroups finds a hierarchy with memory and pids controllers that
// this process can create groups in.
func detectCgroups() cgroupMode {
	var st unix.Statfs_t
	if unix.Statfs(cgroupRoot, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		ctrl, err := os.ReadFile(filepath.Join(cgroupRoot, "cgroup.controllers"))
		if err == nil && hasWords(string(ctrl), "memory", "pids") && unix.Access(cgroupRoot, unix.W_OK) == nil {
			return cgroupV2
		}
		return cgroupNone
	}
	for _, c := range []string{"memory", "pids"} {
		p := filepath.Join(cgroupRoot, c)
		if unix.Statfs(p, &st) != nil || st.Type != unix.CGROUP_SUPER_MAGIC || unix.Access(p, unix.W_OK) != nil {
			return cgroupNone
		}
	}
	return cgroupV1
}

func hasWords(s string, words ...string) bool {
	fields := strings.Fields(s)
	for _, w := range words {
		found := false
		for _, f := range fields {
			if f == w {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// cgroup is the memory and pids group of one run.
type cgroup struct {
	mode cgroupMode
	dirs []string // v1: one per controller; v2: one
}

// newCgroup creates rex/<name> with the limits. Swap is limited to zero
// where the host allows it, so memory.max means what it says.
func newCgroup(mode cgroupMode, name string, memBytes, pids int64) (*cgroup, error) {
	cg := &cgroup{mode: mode}
	mk := func(dir string) error {
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return err
		}
		if err := os.Mkdir(dir, 0o755); err != nil {
			return err
		}
		cg.dirs = append(cg.dirs, dir)
		return nil
	}
	var err error
	switch mode {
	case cgroupV2:
		parent := filepath.Join(cgroupRoot, "rex")
		if _, serr := os.Stat(parent); errors.Is(serr, os.ErrNotExist) {
			if err = os.Mkdir(parent, 0o755); err == nil {
				err = writeFile(filepath.Join(parent, "cgroup.subtree_control"), "+memory +pids")
			}
			if err != nil && !errors.Is(err, os.ErrExist) {
				return nil, err
			}
		}
		dir := filepath.Join(parent, name)
		if err = mk(dir); err != nil {
			return nil, err
		}
		err = errors.Join(
			writeFile(filepath.Join(dir, "memory.max"), strconv.FormatInt(memBytes, 10)),
			writeFile(filepath.Join(dir, "pids.max"), strconv.FormatInt(pids, 10)),
			writeFile(filepath.Join(dir, "memory.oom.group"), "1"))
		_ = writeFile(filepath.Join(dir, "memory.swap.max"), "0")
	case cgroupV1:
		mem := filepath.Join(cgroupRoot, "memory", "rex", name)
		pid := filepath.Join(cgroupRoot, "pids", "rex", name)
		if err = mk(mem); err == nil {
			err = mk(pid)
		}
		if err == nil {
			err = errors.Join(
				writeFile(filepath.Join(mem, "memory.limit_in_bytes"), strconv.FormatInt(memBytes, 10)),
				writeFile(filepath.Join(pid, "pids.max"), strconv.FormatInt(pids, 10)))
			_ = writeFile(filepath.Join(mem, "memory.memsw.limit_in_bytes"), strconv.FormatInt(memBytes, 10))
			_ = writeFile(filepath.Join(mem, "memory.swappiness"), "0")
		}
	default:
		return nil, errors.New("no usable cgroup hierarchy")
	}
	if err != nil {
		cg.remove()
		return nil, err
	}
	return cg, nil
}

// add moves pid into every directory of the group.
func (cg *cgroup) add(pid int) error {
	for _, d := range cg.dirs {
		if err := writeFile(filepath.Join(d, "cgroup.procs"), strconv.Itoa(pid)); err != nil {
			return err
		}
	}
	return nil
}

// oomKilled reports whether the kernel's OOM killer acted in this group.
func (cg *cgroup) oomKilled() bool {
	switch cg.mode {
	case cgroupV2:
		return readKey(filepath.Join(cg.dirs[0], "memory.events"), "oom_kill") > 0 ||
			readKey(filepath.Join(cg.dirs[0], "memory.events"), "oom") > 0
	case cgroupV1:
		return readKey(filepath.Join(cg.dirs[0], "memory.oom_control"), "oom_kill") > 0
	}
	return false
}

// remove deletes the group, killing whatever is left in it first. A run's
// group is normally empty by now (its worker, pid 1 of its pid namespace,
// is reaped, and every process of the namespace died with it), so it tries
// the removal first and only kills and retries, briefly, while the kernel
// reaps, when that fails.
func (cg *cgroup) remove() {
	if cg.removeEmpty() {
		return
	}
	for _, d := range cg.dirs {
		if cg.mode == cgroupV2 {
			_ = writeFile(filepath.Join(d, "cgroup.kill"), "1")
		} else {
			killProcs(filepath.Join(d, "cgroup.procs"))
		}
	}
	for try := 0; try < 200 && !cg.removeEmpty(); try++ {
		time.Sleep(5 * time.Millisecond)
	}
}

// removeEmpty removes every directory of the group that it can, and
// reports whether none is left.
func (cg *cgroup) removeEmpty() bool {
	left := false
	for i := len(cg.dirs) - 1; i >= 0; i-- {
		if err := unix.Rmdir(cg.dirs[i]); err != nil && !errors.Is(err, unix.ENOENT) {
			left = true
		}
	}
	return !left
}

func killProcs(procs string) {
	b, err := readSysFile(procs)
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(b), "\n") {
		if pid, err := strconv.Atoi(line); err == nil && pid > 0 {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
	}
}

func readKey(path, key string) int64 {
	b, err := readSysFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == key {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}

// writeFile and readSysFile write and read the small control files of
// cgroupfs and procfs (a limit, a pid, a status) with plain system calls:
// through an os.File each would also be offered to Go's poller, which
// refuses it, three system calls more per file and a run touches a dozen.
func writeFile(path, s string) error {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_TRUNC|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	for {
		_, err = unix.Write(fd, []byte(s))
		if err != unix.EINTR {
			break
		}
	}
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// maxSysFile bounds readSysFile: the files it reads are a few KiB, and a
// cgroup.procs of a runaway run is bounded by the pids limit.
const maxSysFile = 1 << 20

func readSysFile(path string) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	b, err := io.ReadAll(io.LimitReader(ipc.FDReader(fd), maxSysFile+1))
	if err == nil && len(b) > maxSysFile {
		err = unix.EFBIG
	}
	if err != nil {
		return nil, &os.PathError{Op: "read", Path: path, Err: err}
	}
	return b, nil
}

// cgroupDirs returns the directories newCgroup creates for name.
func cgroupDirs(mode cgroupMode, name string) []string {
	switch mode {
	case cgroupV2:
		return []string{filepath.Join(cgroupRoot, "rex", name)}
	case cgroupV1:
		return []string{filepath.Join(cgroupRoot, "memory", "rex", name), filepath.Join(cgroupRoot, "pids", "rex", name)}
	}
	return nil
}

// cgroupParents are the rex directories of every hierarchy a run may use.
func cgroupParents() []string {
	return []string{
		filepath.Join(cgroupRoot, "rex"),
		filepath.Join(cgroupRoot, "memory", "rex"),
		filepath.Join(cgroupRoot, "pids", "rex"),
	}
}

// SweepCgroups removes empty run groups left behind by a broker that was
// killed before it could remove them. It only rmdirs: a group with live
// processes belongs to a running broker (several may share a host), and the
// kernel refuses to remove it. Groups younger than a minute are left alone
// so that a group another broker has just created and not yet filled is
// not taken from under it.
func SweepCgroups() int {
	n := 0
	for _, parent := range cgroupParents() {
		ents, err := os.ReadDir(parent)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if !e.IsDir() || !(strings.HasPrefix(e.Name(), "run-") || strings.HasPrefix(e.Name(), "probe-")) {
				continue
			}
			if info, err := e.Info(); err != nil || time.Since(info.ModTime()) < time.Minute {
				continue
			}
			if unix.Rmdir(filepath.Join(parent, e.Name())) == nil {
				n++
			}
		}
	}
	return n
}

// CgroupJanitor is the body of the broker's janitor process: it reads
// "+DIR" and "-DIR" lines from the broker (a group created, a group
// removed) until the broker's end of the pipe closes, which happens however
// the broker ends, SIGKILL included. Then it kills what is left in the
// groups still live and removes them.
func CgroupJanitor(r io.Reader) {
	live := map[string]bool{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if len(line) < 2 || !underRexCgroup(line[1:]) {
			continue
		}
		switch line[0] {
		case '+':
			live[line[1:]] = true
		case '-':
			delete(live, line[1:])
		}
	}
	if len(live) == 0 {
		return
	}
	cg := &cgroup{mode: cgroupV1}
	for d := range live {
		if _, err := os.Stat(filepath.Join(d, "cgroup.kill")); err == nil {
			cg.mode = cgroupV2
		}
		cg.dirs = append(cg.dirs, d)
	}
	cg.remove()
}

func underRexCgroup(dir string) bool {
	if filepath.Clean(dir) != dir {
		return false
	}
	for _, p := range cgroupParents() {
		if filepath.Dir(dir) == p {
			return true
		}
	}
	return false
}

// JanitorFeed returns an OnCgroup hook writing to the janitor's pipe.
// Writes are whole lines under a lock; a janitor that went away makes them
// fail, which costs nothing but the protection it gave.
func JanitorFeed(w io.Writer) func(dirs []string, live bool) {
	var mu sync.Mutex
	return func(dirs []string, live bool) {
		op := "-"
		if live {
			op = "+"
		}
		var b strings.Builder
		for _, d := range dirs {
			b.WriteString(op + d + "\n")
		}
		mu.Lock()
		_, _ = io.WriteString(w, b.String())
		mu.Unlock()
	}
}
