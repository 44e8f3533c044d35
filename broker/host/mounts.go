package host

import (
	"bytes"
	"fmt"
	"io"
	"iter"
	"os"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// mount is one line of /proc/self/mountinfo that matters for anchoring.
type mount struct {
	id    uint64 // mount ID, as STATX_MNT_ID reports it
	point string // canonical absolute mount point
}

// mountTable is the broker's view of its mount namespace, deepest mount
// points first so that the first prefix match is the deepest one.
type mountTable []mount

// parseMountinfo reads the format of proc(5) mountinfo. When a mount point
// appears more than once (over-mounts), the last line wins, as it is the
// visible one.
func parseMountinfo(data []byte) (mountTable, error) {
	byPoint := map[string]uint64{}
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if len(line) == 0 {
			continue
		}
		f := strings.Fields(string(line))
		if len(f) < 5 {
			return nil, fmt.Errorf("mountinfo: short line %q", line)
		}
		id, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("mountinfo: bad mount id %q", f[0])
		}
		point, err := unescapeMountinfo(f[4])
		if err != nil {
			return nil, err
		}
		if !strings.HasPrefix(point, "/") {
			return nil, fmt.Errorf("mountinfo: relative mount point %q", point)
		}
		byPoint[point] = id
	}
	t := make(mountTable, 0, len(byPoint))
	for p, id := range byPoint {
		t = append(t, mount{id: id, point: p})
	}
	sort.Slice(t, func(i, j int) bool {
		di, dj := strings.Count(t[i].point, "/"), strings.Count(t[j].point, "/")
		if t[i].point == "/" {
			di = 0
		}
		if t[j].point == "/" {
			dj = 0
		}
		if di != dj {
			return di > dj
		}
		return t[i].point < t[j].point
	})
	return t, nil
}

// unescapeMountinfo undoes the kernel's octal escaping of space, tab,
// newline and backslash (\040 etc.) in mountinfo paths.
func unescapeMountinfo(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i+4 > len(s) {
			return "", fmt.Errorf("mountinfo: bad escape in %q", s)
		}
		v, err := strconv.ParseUint(s[i+1:i+4], 8, 8)
		if err != nil {
			return "", fmt.Errorf("mountinfo: bad escape in %q", s)
		}
		b.WriteByte(byte(v))
		i += 3
	}
	return b.String(), nil
}

// candidates yields the mounts whose mount point is a component-wise
// prefix of path, deepest first. "/" is always last. (An iterator, not a
// slice: a lookup mostly takes the first, and the slice was an allocation
// in every stat.)
func (t mountTable) candidates(path string) iter.Seq[mount] {
	return func(yield func(mount) bool) {
		for _, m := range t {
			if under(path, m.point) && !yield(m) {
				return
			}
		}
	}
}

// under reports whether path is dir or below it, component-wise: /srv/data2
// is not under /srv/data.
func under(path, dir string) bool {
	if dir == "/" {
		return true
	}
	return path == dir || (strings.HasPrefix(path, dir) && path[len(dir)] == '/')
}

// mountWatch owns the open mountinfo file. poll(2) on it reports
// POLLPRI|POLLERR once after every change of the mount namespace, and the
// poll itself acknowledges the event, so a change is never missed: a change
// after the poll shows at the next one.
type mountWatch struct {
	f *os.File
	// fd is f's descriptor, taken once: File.Fd on every poll would cost
	// an fcntl per lookup (it puts the file in blocking mode each time).
	fd int32
}

func openMountWatch() (*mountWatch, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	return &mountWatch{f: f, fd: int32(f.Fd())}, nil
}

// changed reports whether the mount table changed since the last call.
func (w *mountWatch) changed() (bool, error) {
	fds := []unix.PollFd{{Fd: w.fd, Events: unix.POLLPRI}}
	for {
		_, err := unix.Poll(fds, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return true, err
		}
		return fds[0].Revents&(unix.POLLPRI|unix.POLLERR) != 0, nil
	}
}

// read parses the whole mount table from the start of the file.
func (w *mountWatch) read() (mountTable, error) {
	if _, err := w.f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(w.f)
	if err != nil {
		return nil, err
	}
	return parseMountinfo(data)
}

func (w *mountWatch) close() error { return w.f.Close() }
