package host

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/rex-sh/rex/internal/testutil"
)

func TestLookupKinds(t *testing.T) {
	f := newFS(t)
	d := tempDir(t)
	mustMkdir(t, d+"/dir")
	mustWrite(t, d+"/dir/file", "hello")
	mustSymlink(t, "dir", d+"/linkdir")
	mustSymlink(t, "dir/file", d+"/linkfile")

	cases := []struct {
		path string
		kind Kind
		err  unix.Errno
	}{
		{d + "/dir", KindDir, 0},
		{d + "/dir/file", KindFile, 0},
		{d + "/linkfile", KindSymlink, 0}, // leaf symlink is the symlink itself
		{d + "/linkdir", KindSymlink, 0},
		{d + "/linkdir/file", "", unix.ELOOP}, // intermediate symlink is refused
		{d + "/missing", "", unix.ENOENT},
		{d + "/dir/file/x", "", unix.ENOTDIR},
		{"/", KindDir, 0},
		{d + "/dir/../dir", "", unix.EINVAL},
		{d + "//dir", "", unix.EINVAL},
		{d + "/dir/", "", unix.EINVAL},
		{"relative", "", unix.EINVAL},
	}
	for _, c := range cases {
		o, err := f.Lookup(c.path, false)
		if c.err != 0 {
			wantErrno(t, err, c.err)
			var pe *os.PathError
			if !errors.As(err, &pe) || pe.Path != c.path {
				t.Errorf("%s: error %v does not name the path", c.path, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", c.path, err)
		}
		if o.Info().Kind != c.kind {
			t.Errorf("%s: kind %s, want %s", c.path, o.Info().Kind, c.kind)
		}
		dev, ino := inode(t, c.path)
		if o.Info().Dev != dev || o.Info().Ino != ino {
			t.Errorf("%s: found another inode", c.path)
		}
		o.Close()
	}
	o, err := f.Lookup(d+"/linkfile", false)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if tgt, err := o.Readlink(); err != nil || tgt != "dir/file" {
		t.Errorf("Readlink = %q, %v", tgt, err)
	}
	if _, err := o.OpenRead(); !errors.Is(err, unix.ELOOP) {
		t.Errorf("OpenRead of a symlink: %v, want ELOOP", err)
	}
}

func TestLookupFollow(t *testing.T) {
	f := newFS(t)
	d := tempDir(t)
	mustMkdir(t, d+"/a/b")
	mustWrite(t, d+"/a/b/file", "x")
	mustSymlink(t, "b", d+"/a/lb")
	mustSymlink(t, "../a/lb/file", d+"/a/rel")
	mustSymlink(t, d+"/a/lb", d+"/abs")
	mustSymlink(t, "loop2", d+"/loop1")
	mustSymlink(t, "loop1", d+"/loop2")
	mustSymlink(t, "nowhere", d+"/dangling")
	mustSymlink(t, "b/file/x", d+"/a/notdir")

	for path, want := range map[string]string{
		d + "/a/lb/file": d + "/a/b/file",
		d + "/a/rel":     d + "/a/b/file",
		d + "/abs/file":  d + "/a/b/file",
		d + "/abs":       d + "/a/b",
		d + "/a/b/file":  d + "/a/b/file",
	} {
		o, err := f.Lookup(path, true)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if o.Path() != want {
			t.Errorf("%s resolved to %s, want %s", path, o.Path(), want)
		}
		if dev, ino := inode(t, want); o.Info().Dev != dev || o.Info().Ino != ino {
			t.Errorf("%s: wrong inode", path)
		}
		o.Close()
	}
	_, err := f.Lookup(d+"/loop1", true)
	wantErrno(t, err, unix.ELOOP)
	if w := WireError(err); !strings.Contains(w.Message, "too many levels") {
		t.Errorf("loop message %q", w.Message)
	}
	_, err = f.Lookup(d+"/dangling", true)
	wantErrno(t, err, unix.ENOENT)
	_, err = f.Lookup(d+"/a/notdir", true)
	wantErrno(t, err, unix.ENOTDIR)
}

// Magic links are never resolved, followed or not, and /proc symlinks are
// not followed in the broker's context at all.
func TestFollowRefusesMagicLinks(t *testing.T) {
	f := newFS(t)
	d := tempDir(t)
	file, err := os.Open(d)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	mustSymlink(t, "/proc/self/root", d+"/toroot")
	mustSymlink(t, fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), file.Fd()), d+"/tofd")
	for _, p := range []string{
		"/proc/self/root",
		"/proc/self/root/etc/passwd",
		fmt.Sprintf("/proc/self/fd/%d", file.Fd()),
		fmt.Sprintf("/proc/%d/root/etc/passwd", os.Getpid()),
		fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), file.Fd()),
		d + "/toroot/etc/passwd",
		d + "/tofd",
	} {
		o, err := f.Lookup(p, true)
		if err == nil {
			o.Close()
			t.Errorf("%s: followed", p)
			continue
		}
		wantErrno(t, err, unix.ELOOP)
	}
	// Not following: the leaf magic link is returned as a symlink object,
	// and nothing beyond it resolves.
	o, err := f.Lookup(fmt.Sprintf("/proc/%d/root", os.Getpid()), false)
	if err != nil {
		t.Fatal(err)
	}
	if o.Info().Kind != KindSymlink {
		t.Errorf("kind %s", o.Info().Kind)
	}
	o.Close()
	_, err = f.Lookup(fmt.Sprintf("/proc/%d/root/etc", os.Getpid()), false)
	wantErrno(t, err, unix.ELOOP)
}

// A path whose follow would climb out of the grant through a renamed
// directory: symlinks' ".." are applied to the resolved text, so an
// exchange of a/c with an outside directory can never lead to the
// sentinel beside a.
func TestRenameExchangeRace(t *testing.T) {
	f := newFS(t)
	d := tempDir(t)
	mustMkdir(t, d+"/a/c")
	mustMkdir(t, d+"/b")
	mustWrite(t, d+"/a/c/f", "inside")
	mustWrite(t, d+"/b/f", "swapped")
	mustWrite(t, d+"/secret", "secret")
	mustSymlink(t, "..", d+"/a/c/up")
	mustSymlink(t, "..", d+"/b/up")
	_, secretIno := inode(t, d+"/secret")

	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			if err := unix.Renameat2(unix.AT_FDCWD, d+"/a/c", unix.AT_FDCWD, d+"/b", unix.RENAME_EXCHANGE); err != nil {
				done <- err
				return
			}
		}
	}()
	paths := []string{d + "/a/c/up/secret", d + "/a/c/f", d + "/a/c/up/c/up/secret", d + "/a/c/up/c/f"}
	opened := 0
	for i := range 20000 {
		p := paths[i%len(paths)]
		o, err := f.Lookup(p, i%2 == 0 || strings.Contains(p, "up"))
		if err != nil {
			continue
		}
		opened++
		if o.Info().Ino == secretIno || !strings.HasPrefix(o.Path(), d+"/a/") {
			t.Fatalf("escaped: %s opened %s (ino %d)", p, o.Path(), o.Info().Ino)
		}
		o.Close()
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if opened == 0 {
		t.Fatal("no lookup succeeded; the race exercised nothing")
	}
}

// fileOnTmpfs makes d/m a tmpfs holding m/sub/f ("on tmpfs") and returns
// d and an FS over it.
func fileOnTmpfs(t *testing.T) (string, *FS) {
	t.Helper()
	requireRoot(t)
	d := tempDir(t)
	mustMkdir(t, d+"/m")
	mountTmpfs(t, d+"/m", "size=1m")
	mustMkdir(t, d+"/m/sub")
	mustWrite(t, d+"/m/sub/f", "on tmpfs")
	return d, newFS(t)
}

func TestMountAnchor(t *testing.T) {
	d, f := fileOnTmpfs(t)

	o, err := f.Lookup(d+"/m/sub/f", false)
	if err != nil {
		t.Fatalf("lookup across a known mount: %v", err)
	}
	data, err := o.ReadAll(100)
	o.Close()
	if err != nil || string(data) != "on tmpfs" {
		t.Fatalf("ReadAll = %q, %v", data, err)
	}
	root, err := f.Lookup(d+"/m", false)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	ents, err := root.ReadDir()
	if err != nil || len(ents) != 1 || ents[0].Name != "sub" {
		t.Fatalf("ReadDir of mount root = %v, %v", ents, err)
	}
	// A mount that appears after New is picked up through the watch.
	mustMkdir(t, d+"/m2")
	mountTmpfs(t, d+"/m2", "size=1m")
	mustWrite(t, d+"/m2/g", "late")
	o, err = f.Lookup(d+"/m2/g", false)
	if err != nil {
		t.Fatalf("lookup under a new mount: %v", err)
	}
	o.Close()
}

// A file described under a mount other than "/" keeps a descriptor on
// itself and the mount's anchor until Close, and Close releases both.
func TestDescribeUnderMountCloses(t *testing.T) {
	d, f := fileOnTmpfs(t)
	if o, err := f.Describe(d+"/m/sub/f", false); err != nil { // reads the table
		t.Fatal(err)
	} else {
		o.Close()
	}
	before := testutil.OpenFDs(t)
	o, err := f.Describe(d+"/m/sub/f", false)
	if err != nil {
		t.Fatal(err)
	}
	if o.Info().Kind != KindFile || o.Info().Size != int64(len("on tmpfs")) {
		t.Errorf("Info = %+v", o.Info())
	}
	if n := testutil.OpenFDs(t); n != before+2 {
		t.Errorf("a described file under a mount holds %d descriptors until Close, want its own and the anchor", n-before)
	}
	o.Close()
	o.Close() // idempotent
	if n := testutil.OpenFDs(t); n != before {
		t.Errorf("Close leaves %d descriptors open", n-before)
	}
}

// A mount swapped in after the table was read is not walked through:
// the anchor check sees another mount ID and the walk from the parent
// mount stops at the mount point with EXDEV.
func TestMountSwapRefused(t *testing.T) {
	requireRoot(t)
	d := tempDir(t)
	mustMkdir(t, d+"/m")
	mountTmpfs(t, d+"/m", "size=1m")
	mustWrite(t, d+"/m/f", "first")
	f := newFS(t)
	if _, err := f.table(false); err != nil { // read now, then keep it
		t.Fatal(err)
	}
	f.frozen = true
	mountTmpfs(t, d+"/m", "size=1m") // over-mount: the stale table still names the first
	mustWrite(t, d+"/m/f", "second")
	_, err := f.Lookup(d+"/m/f", false)
	wantErrno(t, err, unix.EXDEV)
	if Code(err).String() != "xdev" {
		t.Errorf("code %v", Code(err))
	}
	f.frozen = false
	o, err := f.Lookup(d+"/m/f", false)
	if err != nil {
		t.Fatalf("after refresh: %v", err)
	}
	defer o.Close()
	if data, _ := o.ReadAll(10); string(data) != "second" {
		t.Errorf("read %q", data)
	}
}

// While a host actor keeps mounting and unmounting over the mount point,
// every successful lookup is one of the two files really mounted there.
func TestMountSwapRace(t *testing.T) {
	requireRoot(t)
	d := tempDir(t)
	mustMkdir(t, d+"/m")
	mustMkdir(t, d+"/other")
	mountTmpfs(t, d+"/m", "size=1m")
	mustWrite(t, d+"/m/f", "first")
	mountTmpfs(t, d+"/other", "size=1m")
	mustWrite(t, d+"/other/f", "second")
	d1, i1 := inode(t, d+"/m/f")
	d2, i2 := inode(t, d+"/other/f")
	f := newFS(t)

	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			if err := unix.Mount(d+"/other", d+"/m", "", unix.MS_BIND, ""); err != nil {
				done <- err
				return
			}
			if err := unix.Unmount(d+"/m", unix.MNT_DETACH); err != nil {
				done <- err
				return
			}
		}
	}()
	ok := 0
	for range 3000 {
		o, err := f.Lookup(d+"/m/f", false)
		if err != nil {
			if !errors.Is(err, unix.EXDEV) && !errors.Is(err, unix.ENOENT) {
				t.Fatalf("unexpected error %v", err)
			}
			continue
		}
		in := o.Info()
		o.Close()
		if !(in.Dev == d1 && in.Ino == i1) && !(in.Dev == d2 && in.Ino == i2) {
			t.Fatalf("found an object that was never at the path: dev %d ino %d", in.Dev, in.Ino)
		}
		ok++
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if ok == 0 {
		t.Fatal("no lookup succeeded")
	}
}

func TestLookupParent(t *testing.T) {
	f := newFS(t)
	d := tempDir(t)
	mustWrite(t, d+"/file", "x")
	p, name, err := f.LookupParent(d + "/new")
	if err != nil || name != "new" || p.Path() != d {
		t.Fatalf("LookupParent = %v %q %v", p, name, err)
	}
	p.Close()
	_, _, err = f.LookupParent(d + "/file/x")
	wantErrno(t, err, unix.ENOTDIR)
	_, _, err = f.LookupParent("/")
	wantErrno(t, err, unix.EINVAL)
	p, name, err = f.LookupParent("/etc")
	if err != nil || name != "etc" || p.Path() != "/" {
		t.Fatalf("LookupParent(/etc) = %v %q %v", p, name, err)
	}
	p.Close()
}

func TestCloseIsFinal(t *testing.T) {
	f := newFS(t)
	d := tempDir(t)
	mustWrite(t, filepath.Join(d, "f"), "x")
	o, err := f.Lookup(d+"/f", false)
	if err != nil {
		t.Fatal(err)
	}
	o.Close()
	o.Close()
	if _, err := o.OpenRead(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("OpenRead after Close: %v", err)
	}
}

// A file bind-mounted on a file (as containers do for /etc/resolv.conf) is
// found and read, not refused with EXDEV.
func TestFileMount(t *testing.T) {
	requireRoot(t)
	d := tempDir(t)
	mustWrite(t, d+"/src", "mounted")
	mustWrite(t, d+"/target", "hidden")
	if err := unix.Mount(d+"/src", d+"/target", "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(d+"/target", unix.MNT_DETACH) })
	f := newFS(t)
	o, err := f.Lookup(d+"/target", false)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if data, err := o.ReadAll(100); err != nil || string(data) != "mounted" {
		t.Fatalf("ReadAll = %q, %v", data, err)
	}
	_, err = f.Lookup(d+"/target/x", false)
	wantErrno(t, err, unix.ENOTDIR)
	wantErrno(t, o.Remove(false), unix.EBUSY)
}

// Describe answers what Lookup answers, without keeping a descriptor, and
// leaves what it cannot describe by name (symlinks, mount points) to Lookup.
func TestDescribe(t *testing.T) {
	requireRoot(t)
	d := tempDir(t)
	mustMkdir(t, d+"/dir")
	mustWrite(t, d+"/dir/file", "hello")
	mustSymlink(t, "dir", d+"/linkdir")
	mustMkdir(t, d+"/m")
	mountTmpfs(t, d+"/m", "size=1m")
	mustWrite(t, d+"/m/f", "on tmpfs")
	mustMkdir(t, d+"/bind")
	// A bind mount of the same file system: same st_dev, still a mount.
	if err := unix.Mount(d+"/dir", d+"/bind", "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(d+"/bind", unix.MNT_DETACH) })
	mustWrite(t, d+"/target", "hidden")
	if err := unix.Mount(d+"/dir/file", d+"/target", "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(d+"/target", unix.MNT_DETACH) })
	f := newFS(t)

	paths := []string{"/", d, d + "/dir", d + "/dir/file", d + "/linkdir", d + "/linkdir/file",
		d + "/m", d + "/m/f", d + "/bind", d + "/bind/file", d + "/target", d + "/missing", d + "/dir/file/x"}
	for _, p := range paths {
		for _, follow := range []bool{false, true} {
			for name, find := range map[string]func(string, bool) (*Object, error){"Describe": f.Describe, "LookupToRead": f.LookupToRead} {
				want, werr := f.Lookup(p, follow)
				got, gerr := find(p, follow)
				if (werr == nil) != (gerr == nil) || (werr != nil && unwrapPath(werr) != unwrapPath(gerr)) {
					t.Errorf("%s follow=%v: %s error %v, Lookup %v", p, follow, name, gerr, werr)
				}
				if werr == nil && gerr == nil {
					if got.Info() != want.Info() || got.Path() != want.Path() {
						t.Errorf("%s follow=%v: %s %+v at %s, Lookup %+v at %s",
							p, follow, name, got.Info(), got.Path(), want.Info(), want.Path())
					}
					got.Close()
					want.Close()
				}
			}
		}
	}

	// A plain file or directory is described through a descriptor that
	// stays open, unused, until Close (see Object.spare): no operation
	// works on it.
	before := testutil.OpenFDs(t)
	o, err := f.Describe(d+"/dir/file", false)
	if err != nil {
		t.Fatal(err)
	}
	if n := testutil.OpenFDs(t); n > before+1 {
		t.Errorf("Describe of a file holds %d descriptors", n-before)
	}
	if _, err := o.ReadAll(100); !errors.Is(err, os.ErrClosed) {
		t.Errorf("ReadAll on a described file: %v", err)
	}
	if err := o.Remove(false); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Remove on a described file: %v", err)
	}
	if _, err := o.OpenRead(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("OpenRead on a described file: %v", err)
	}
	o.Close()
	if n := testutil.OpenFDs(t); n != before {
		t.Errorf("a closed described file leaves %d descriptors open", n-before)
	}
	// A symlink is looked up as Lookup does, so its target can be read
	// through the descriptor on it.
	l, err := f.Describe(d+"/linkdir", false)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if tgt, err := l.Readlink(); err != nil || tgt != "dir" {
		t.Errorf("Readlink of a described symlink = %q, %v", tgt, err)
	}
}

// LookupToRead holds only the parent of a plain file, reads it by name, and
// refuses a file that is not what was looked up: another inode, or the same
// inode number with another owner or mode (a reused number).
func TestLookupToRead(t *testing.T) {
	requireRoot(t)
	d := tempDir(t)
	mustWrite(t, d+"/f", "content")
	mustWrite(t, d+"/src", "mounted")
	mustWrite(t, d+"/target", "hidden")
	if err := unix.Mount(d+"/src", d+"/target", "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(d+"/target", unix.MNT_DETACH) })
	f := newFS(t)

	before := testutil.OpenFDs(t)
	o, err := f.LookupToRead(d+"/f", false)
	if err != nil {
		t.Fatal(err)
	}
	if n := testutil.OpenFDs(t); n != before+1 {
		t.Errorf("LookupToRead of a file holds %d descriptors, want 1 (its parent)", n-before)
	}
	if data, err := o.ReadAll(100); err != nil || string(data) != "content" {
		t.Fatalf("ReadAll = %q, %v", data, err)
	}
	if fl, err := o.OpenRead(); err != nil {
		t.Fatalf("OpenRead: %v", err)
	} else {
		fl.Close()
	}
	if _, ok := o.ParentInfo(); !ok {
		t.Error("no ParentInfo")
	}
	if err := o.Remove(false); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Remove on an unpinned object: %v", err)
	}
	if _, err := o.OpenWrite(false); !errors.Is(err, os.ErrClosed) {
		t.Errorf("OpenWrite on an unpinned object: %v", err)
	}
	// Same inode, another mode: not what was authorised.
	os.Chmod(d+"/f", 0o600)
	if _, err := o.ReadAll(100); !errors.Is(err, ErrChanged) {
		t.Errorf("ReadAll after chmod: %v", err)
	}
	o.Close()
	if _, err := o.ReadAll(100); !errors.Is(err, os.ErrClosed) {
		t.Errorf("ReadAll after Close: %v", err)
	}
	// Another file under the name.
	o, err = f.LookupToRead(d+"/f", false)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	os.Remove(d + "/f")
	mustWrite(t, d+"/f", "other")
	os.Chown(d+"/f", 4321, 4321)
	if _, err := o.ReadAll(100); !errors.Is(err, ErrChanged) {
		t.Errorf("ReadAll of a replaced file: %v", err)
	}
	// A file mount is looked up as Lookup does, and read across its mount.
	m, err := f.LookupToRead(d+"/target", false)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if data, err := m.ReadAll(100); err != nil || string(data) != "mounted" {
		t.Errorf("ReadAll of a file mount = %q, %v", data, err)
	}
}

// New leaves the mount table to the first lookup, which reads it: a run
// that looks nothing up never parses it.
func TestMountTableReadOnFirstLookup(t *testing.T) {
	f := newFS(t)
	if f.loaded {
		t.Fatal("New read the mount table")
	}
	o, err := f.Lookup("/", false)
	if err != nil {
		t.Fatal(err)
	}
	o.Close()
	if !f.loaded || len(f.mounts) == 0 {
		t.Fatalf("after a lookup: loaded %v, %d mounts", f.loaded, len(f.mounts))
	}
}
