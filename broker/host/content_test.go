package host

import (
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func lookup(t testing.TB, f *FS, path string) *Object {
	t.Helper()
	o, err := f.Lookup(path, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	return o
}

func TestOpenReadIsReadOnly(t *testing.T) {
	f := newFS(t)
	d := tempDir(t)
	mustWrite(t, d+"/f", "data")
	fh, err := lookup(t, f, d+"/f").OpenRead()
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	fl, err := unix.FcntlInt(fh.Fd(), unix.F_GETFL, 0)
	if err != nil {
		t.Fatal(err)
	}
	if fl&unix.O_ACCMODE != unix.O_RDONLY || fl&unix.O_NONBLOCK != 0 {
		t.Errorf("flags %#o: want O_RDONLY without O_NONBLOCK", fl)
	}
	if fd, _ := unix.FcntlInt(fh.Fd(), unix.F_GETFD, 0); fd&unix.FD_CLOEXEC == 0 {
		t.Error("descriptor is not close-on-exec")
	}
	if _, err := fh.Write([]byte("x")); err == nil {
		t.Error("write to the read-only descriptor succeeded")
	}
	if err := unix.Ftruncate(int(fh.Fd()), 0); err == nil {
		t.Error("ftruncate succeeded")
	}
}

func TestOpenWrite(t *testing.T) {
	f := newFS(t)
	d := tempDir(t)
	mustWrite(t, d+"/f", "data")
	o := lookup(t, f, d+"/f")
	fh, err := o.OpenWrite(true)
	if err != nil {
		t.Fatal(err)
	}
	fl, _ := unix.FcntlInt(fh.Fd(), unix.F_GETFL, 0)
	if fl&unix.O_ACCMODE != unix.O_WRONLY || fl&unix.O_APPEND == 0 {
		t.Errorf("flags %#o", fl)
	}
	fh.Write([]byte("+more"))
	fh.Close()
	if b, _ := os.ReadFile(d + "/f"); string(b) != "data+more" {
		t.Errorf("content %q", b)
	}
}

// Replacing the file between Lookup and the open aborts the open: the
// caller authorised the old inode, not the new one.
func TestOpenReadIdentity(t *testing.T) {
	f := newFS(t)
	d := tempDir(t)
	mustWrite(t, d+"/f", "authorised")
	mustWrite(t, d+"/other", "not authorised")
	o := lookup(t, f, d+"/f")
	if err := os.Rename(d+"/other", d+"/f"); err != nil {
		t.Fatal(err)
	}
	_, err := o.OpenRead()
	if !errors.Is(err, ErrChanged) {
		t.Fatalf("OpenRead after swap: %v, want ErrChanged", err)
	}
	// A symlink swapped in is not followed either.
	mustWrite(t, d+"/g", "authorised")
	o = lookup(t, f, d+"/g")
	os.Remove(d + "/g")
	mustSymlink(t, d+"/other-target", d+"/g")
	if _, err := o.ReadAll(100); err == nil {
		t.Fatal("read through a swapped-in symlink")
	}
}

// noBlock fails the test if fn does not return within a second.
func noBlock(t *testing.T, what string, fn func() error) error {
	t.Helper()
	ch := make(chan error, 1)
	go func() { ch <- fn() }()
	select {
	case err := <-ch:
		return err
	case <-time.After(time.Second):
		t.Fatalf("%s blocked", what)
		return nil
	}
}

func TestSpecialFilesRefused(t *testing.T) {
	f := newFS(t)
	d := tempDir(t)
	if err := unix.Mkfifo(d+"/fifo", 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", d+"/sock")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	paths := []string{d + "/fifo", d + "/sock"}
	if os.Geteuid() == 0 {
		if err := unix.Mknod(d+"/null", unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, d+"/null")
	}
	for _, p := range paths {
		o := lookup(t, f, p)
		err := noBlock(t, p, func() error { _, err := o.OpenRead(); return err })
		if !errors.Is(err, ErrNotRegular) {
			t.Errorf("%s: OpenRead = %v, want ErrNotRegular", p, err)
		}
		err = noBlock(t, p, func() error { _, err := o.OpenWrite(false); return err })
		if !errors.Is(err, ErrNotRegular) {
			t.Errorf("%s: OpenWrite = %v, want ErrNotRegular", p, err)
		}
		if Code(err).String() != "unsupported" {
			t.Errorf("code %v", Code(err))
		}
	}
	// A FIFO swapped in after the lookup is opened non-blocking and
	// refused by the inode check.
	mustWrite(t, d+"/f", "x")
	o := lookup(t, f, d+"/f")
	os.Remove(d + "/f")
	unix.Mkfifo(d+"/f", 0o644)
	for _, fn := range []func() error{
		func() error { _, err := o.OpenRead(); return err },
		func() error { _, err := o.OpenWrite(false); return err },
	} {
		if err := noBlock(t, "swapped fifo", fn); !errors.Is(err, ErrChanged) {
			t.Errorf("swapped fifo: %v, want ErrChanged", err)
		}
	}
	dir := lookup(t, f, d)
	if _, err := dir.OpenRead(); !errors.Is(err, unix.EISDIR) {
		t.Errorf("OpenRead of a dir: %v", err)
	}
}

func TestReadAllCap(t *testing.T) {
	f := newFS(t)
	d := tempDir(t)
	mustWrite(t, d+"/f", strings.Repeat("a", 100))
	o := lookup(t, f, d+"/f")
	if b, err := o.ReadAll(100); err != nil || len(b) != 100 {
		t.Fatalf("ReadAll(100) = %d bytes, %v", len(b), err)
	}
	_, err := o.ReadAll(99)
	if !errors.Is(err, ErrTooLarge) || Code(err).String() != "limit" {
		t.Fatalf("ReadAll(99) = %v", err)
	}
	// The size reported by fstat is not trusted: a sparse giant costs
	// nothing up front and stops at the cap.
	big, _ := os.Create(d + "/sparse")
	big.Truncate(50 << 30)
	big.Close()
	_, err = lookup(t, f, d+"/sparse").ReadAll(1 << 16)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("sparse: %v", err)
	}
}

func TestReadDir(t *testing.T) {
	f := newFS(t)
	d := tempDir(t)
	mustWrite(t, d+"/b", "12")
	mustMkdir(t, d+"/a")
	mustSymlink(t, "/etc/shadow", d+"/c")
	ents, err := lookup(t, f, d).ReadDir()
	if err != nil {
		t.Fatal(err)
	}
	got := []string{}
	for _, e := range ents {
		got = append(got, e.Name+":"+string(e.Info.Kind)+":"+e.Target)
	}
	if strings.Join(got, " ") != "a:dir: b:file: c:symlink:/etc/shadow" {
		t.Errorf("ReadDir = %v", got)
	}
	if _, err := lookup(t, f, d+"/b").ReadDir(); !errors.Is(err, unix.ENOTDIR) {
		t.Errorf("ReadDir of a file: %v", err)
	}
}
