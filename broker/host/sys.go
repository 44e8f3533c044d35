package host

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/rex-sh/rex/ipc"
)

// Uname returns the fields of uname(2).
func Uname() map[string]string {
	var u unix.Utsname
	_ = unix.Uname(&u)
	s := func(b []byte) string { return string(bytes.TrimRight(b, "\x00")) }
	return map[string]string{
		"sysname": s(u.Sysname[:]), "nodename": s(u.Nodename[:]), "release": s(u.Release[:]),
		"version": s(u.Version[:]), "machine": s(u.Machine[:]),
	}
}

// CPUs is the number of online CPUs.
func CPUs() int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err == nil && set.Count() > 0 {
		return set.Count()
	}
	return runtime.NumCPU()
}

// Sysinfo returns uptime in seconds and the 1, 5 and 15 minute load averages.
func Sysinfo() (uptime float64, load []float64, err error) {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return 0, nil, err
	}
	const scale = 1 << 16 // SI_LOAD_SHIFT
	return float64(si.Uptime), []float64{
		float64(si.Loads[0]) / scale, float64(si.Loads[1]) / scale, float64(si.Loads[2]) / scale,
	}, nil
}

// Meminfo parses /proc/meminfo into key → value in kB (counts for the few
// keys that have no unit).
func Meminfo() (map[string]int64, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		if n, err := strconv.ParseInt(f[0], 10, 64); err == nil {
			out[k] = n
		}
	}
	return out, nil
}

// Usage is the usage of one mounted file system, in bytes.
type Usage struct {
	Mount, Source, FSType string
	Total, Used, Avail    uint64
	Inodes, InodesFree    uint64
}

// Mounts lists the host's mounts from /proc/self/mountinfo: mount point,
// source and type, in table order.
func Mounts() ([]Usage, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var out []Usage
	for _, line := range strings.Split(string(b), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(g) < 2 {
			continue
		}
		mp, err := unescapeMountinfo(f[4])
		if err != nil {
			continue
		}
		out = append(out, Usage{Mount: mp, FSType: g[0], Source: g[1]})
	}
	return out, nil
}

// fill takes the figures of u from a statfs result.
func (u *Usage) fill(st *unix.Statfs_t) {
	bs := uint64(st.Bsize)
	u.Total, u.Avail = st.Blocks*bs, st.Bavail*bs
	u.Used = (st.Blocks - st.Bfree) * bs
	u.Inodes, u.InodesFree = st.Files, st.Ffree
}

// Statfs returns the usage of the file system holding o.
func (o *Object) Statfs() (Usage, error) {
	o.mu.RLock()
	defer o.mu.RUnlock()
	var st unix.Statfs_t
	if err := unix.Fstatfs(o.fd, &st); err != nil {
		return Usage{}, pathErr("statfs", o.path, err)
	}
	var u Usage
	u.fill(&st)
	return u, nil
}

// DiskUsage statfs-es every mount whose type is a real (block or network)
// file system, leaving out the kernel's pseudo file systems, as df does.
// Each mount point is opened O_PATH without following symlinks; one that
// cannot be reached is left out.
func DiskUsage() ([]Usage, error) {
	ms, err := Mounts()
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []Usage
	for _, m := range ms {
		if pseudoFS[m.FSType] || seen[m.Mount] {
			continue
		}
		seen[m.Mount] = true
		fd, err := unix.Open(m.Mount, unix.O_PATH|unix.O_CLOEXEC|unix.O_NOFOLLOW|unix.O_DIRECTORY, 0)
		if err != nil {
			continue
		}
		var st unix.Statfs_t
		err = unix.Fstatfs(fd, &st)
		unix.Close(fd)
		if err != nil || st.Blocks == 0 {
			continue
		}
		m.fill(&st)
		out = append(out, m)
	}
	return out, nil
}

var pseudoFS = map[string]bool{
	"proc": true, "sysfs": true, "cgroup": true, "cgroup2": true, "devpts": true, "mqueue": true,
	"debugfs": true, "tracefs": true, "securityfs": true, "pstore": true, "bpf": true,
	"configfs": true, "fusectl": true, "hugetlbfs": true, "binfmt_misc": true, "autofs": true,
	"nsfs": true, "efivarfs": true, "rpc_pipefs": true, "selinuxfs": true, "devtmpfs": true,
}

// Dmesg returns the last n lines of the kernel log, read from /dev/kmsg
// without blocking.
func Dmesg(n int) ([]string, error) {
	fd, err := unix.Open("/dev/kmsg", unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: "/dev/kmsg", Err: err}
	}
	defer unix.Close(fd)
	ring := make([]string, 0, n)
	buf := make([]byte, 8192) // one record per read; records are < 8 KiB
	for {
		k, err := unix.Read(fd, buf)
		if errors.Is(err, unix.EPIPE) {
			continue // overwritten while reading: go on with the next record
		}
		if err != nil || k <= 0 {
			break // EAGAIN: the end of the log
		}
		// "prio,seq,usec,flags;message\n continuation lines"
		rec := string(buf[:k])
		_, msg, ok := strings.Cut(rec, ";")
		if !ok {
			continue
		}
		msg, _, _ = strings.Cut(msg, "\n")
		if len(ring) == n {
			copy(ring, ring[1:])
			ring = ring[:n-1]
		}
		ring = append(ring, strings.ToValidUTF8(msg, "?"))
	}
	return ring, nil
}

// Sysctl reaches /proc/sys through one directory descriptor, opened once;
// every key is opened beneath it with openat2, never following a symlink,
// never leaving /proc/sys.
type Sysctl struct {
	once sync.Once
	fd   int
	err  error
}

// SysctlPath turns a key (net.ipv4.ip_forward, or net/ipv4/ip_forward, or
// /proc/sys/net/ipv4/ip_forward) into its path under /proc/sys. Keys hold
// letters, digits and _ - . / only; a path's ".." or empty component is
// refused. In the dotted form, as in sysctl(8), "/" stands for a dot inside
// a name (interface names like eth0.100).
func SysctlPath(key string) (string, error) {
	var rel string
	switch {
	case strings.HasPrefix(key, "/proc/sys/"):
		rel = strings.TrimPrefix(key, "/proc/sys/")
	case strings.IndexAny(key, "./") >= 0 && key[strings.IndexAny(key, "./")] == '/':
		rel = key // path form: the first separator is a slash
	default:
		rel = strings.Map(func(r rune) rune {
			switch r {
			case '.':
				return '/'
			case '/':
				return '.'
			}
			return r
		}, key)
	}
	if rel == "" || len(rel) > 255 {
		return "", ipc.Errorf(ipc.CodeInvalid, "invalid sysctl key %q", key)
	}
	for _, r := range rel {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_-./", r)) {
			return "", ipc.Errorf(ipc.CodeInvalid, "invalid sysctl key %q", key)
		}
	}
	for _, c := range strings.Split(rel, "/") {
		if c == "" || c == "." || c == ".." {
			return "", ipc.Errorf(ipc.CodeInvalid, "invalid sysctl key %q", key)
		}
	}
	return "/proc/sys/" + rel, nil
}

func (s *Sysctl) dir() (int, error) {
	s.once.Do(func() {
		s.fd, s.err = unix.Open("/proc/sys", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	})
	return s.fd, s.err
}

func (s *Sysctl) open(p string, flags int) (*os.File, error) {
	dfd, err := s.dir()
	if err != nil {
		return nil, err
	}
	how := unix.OpenHow{
		Flags:   uint64(flags | unix.O_CLOEXEC | unix.O_NOFOLLOW),
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	}
	fd, err := unix.Openat2(dfd, strings.TrimPrefix(p, "/proc/sys/"), &how)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	f := os.NewFile(uintptr(fd), p)
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		f.Close()
		return nil, &os.PathError{Op: "open", Path: p, Err: unix.EISDIR}
	}
	return f, nil
}

// Get reads the parameter at p (a path from SysctlPath).
func (s *Sysctl) Get(p string) (string, error) {
	f, err := s.open(p, unix.O_RDONLY)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := readUpTo(f, make([]byte, 0, 4096), 64<<10)
	if err != nil {
		return "", pathErr("read", p, err)
	}
	return strings.TrimRight(string(b), "\n"), nil
}

// Set writes value to the parameter at p in one write, as the kernel wants.
func (s *Sysctl) Set(p, value string) error {
	f, err := s.open(p, unix.O_WRONLY)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Write([]byte(value)); err != nil {
		return &os.PathError{Op: "write", Path: p, Err: errors.Unwrap(err)}
	}
	return nil
}

// SysctlDirs are the directories systemd-sysctl reads, in priority order:
// a file name in an earlier directory hides the same name in later ones;
// /etc/sysctl.conf is applied last.
var SysctlDirs = []string{"/etc/sysctl.d", "/run/sysctl.d", "/usr/local/lib/sysctl.d", "/usr/lib/sysctl.d", "/lib/sysctl.d"}

// SysctlSetting is one key = value line of a configuration file.
type SysctlSetting struct {
	Key, Value string
	// Optional settings ("-key = value") do not fail the load when the key
	// does not exist.
	Optional bool
	Source   string
}

// SysctlConfig reads the settings of the configuration files in dirs (and
// then conf, when not empty), in the order they are applied: files sorted
// by name across the directories, the first directory holding a name
// winning. Glob keys are left out (they name no single file).
func SysctlConfig(dirs []string, conf string) ([]SysctlSetting, error) {
	files := map[string]string{}
	for _, d := range dirs {
		ents, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if !strings.HasSuffix(e.Name(), ".conf") {
				continue
			}
			if _, ok := files[e.Name()]; !ok {
				files[e.Name()] = filepath.Join(d, e.Name())
			}
		}
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	paths := make([]string, 0, len(names)+1)
	for _, n := range names {
		paths = append(paths, files[n])
	}
	if conf != "" {
		if _, err := os.Stat(conf); err == nil {
			paths = append(paths, conf)
		}
	}
	var out []SysctlSetting
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		for ln := 1; sc.Scan(); ln++ {
			line := strings.TrimSpace(sc.Text())
			if line == "" || line[0] == '#' || line[0] == ';' {
				continue
			}
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				continue
			}
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			set := SysctlSetting{Key: k, Value: v, Source: fmt.Sprintf("%s:%d", p, ln)}
			if strings.HasPrefix(k, "-") {
				set.Key, set.Optional = strings.TrimSpace(k[1:]), true
			}
			if strings.ContainsAny(set.Key, "*?[") {
				continue
			}
			out = append(out, set)
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}
