package host

import (
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// noTemp fails if a temporary file of WriteFile is left in dir.
func noTemp(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".rex-tmp-") {
			t.Errorf("temporary file left: %s", e.Name())
		}
	}
}

func TestWriteFileAtomicKeepsModeAndOwner(t *testing.T) {
	requireRoot(t)
	f := newFS(t)
	d := tempDir(t)
	mustWrite(t, d+"/f", "old")
	os.Chmod(d+"/f", 0o640|os.ModeSetgid)
	os.Chown(d+"/f", 1234, 5678)
	os.Link(d+"/f", d+"/hardlink")
	_, oldIno := inode(t, d+"/f")

	n, err := f.WriteFile(d+"/f", []byte("new content"), false, 0o600)
	if err != nil || n != 11 {
		t.Fatalf("WriteFile = %d, %v", n, err)
	}
	st, _ := os.Stat(d + "/f")
	sys := st.Sys().(*syscall.Stat_t)
	if sys.Mode&07777 != 0o2640 || sys.Uid != 1234 || sys.Gid != 5678 {
		t.Errorf("mode %#o owner %d:%d, want 02640 1234:5678", sys.Mode&07777, sys.Uid, sys.Gid)
	}
	if _, ino := inode(t, d+"/f"); ino == oldIno {
		t.Error("written in place, not replaced")
	}
	if b, _ := os.ReadFile(d + "/f"); string(b) != "new content" {
		t.Errorf("content %q", b)
	}
	// The other name of the old inode is not written through.
	if b, _ := os.ReadFile(d + "/hardlink"); string(b) != "old" {
		t.Errorf("hard link changed: %q", b)
	}
	noTemp(t, d)
}

func TestWriteFileCreateAndAppend(t *testing.T) {
	f := newFS(t)
	d := tempDir(t)
	old := unix.Umask(0o077)
	defer unix.Umask(old)
	if _, err := f.WriteFile(d+"/new", []byte("a"), false, 0o644); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(d + "/new"); st.Mode().Perm() != 0o644 {
		t.Errorf("new file mode %v, want 0644 whatever the umask", st.Mode())
	}
	if _, err := f.WriteFile(d+"/new", []byte("bc"), true, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteFile(d+"/appended", []byte("x"), true, 0o640); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(d + "/new"); string(b) != "abc" {
		t.Errorf("append: %q", b)
	}
	if st, _ := os.Stat(d + "/appended"); st.Mode().Perm() != 0o640 {
		t.Errorf("appended file mode %v", st.Mode())
	}
	noTemp(t, d)

	dir := lookup(t, f, d)
	// Existing nil means create: O_EXCL semantics.
	_, err := dir.WriteFile("new", []byte("x"), WriteOptions{Perm: 0o600})
	wantErrno(t, err, unix.EEXIST)
	_, err = dir.WriteFile("new", []byte("x"), WriteOptions{Perm: 0o600, Append: true})
	wantErrno(t, err, unix.EEXIST)
	// Existing names an inode that is no longer there.
	in := lookup(t, f, d+"/new").Info()
	os.Remove(d + "/new")
	mustWrite(t, d+"/new", "replaced by the host")
	for _, app := range []bool{false, true} {
		_, err = dir.WriteFile("new", []byte("x"), WriteOptions{Existing: &in, Append: app})
		if !errors.Is(err, ErrChanged) {
			t.Errorf("append=%v: write over a swapped file: %v", app, err)
		}
	}
	if b, _ := os.ReadFile(d + "/new"); string(b) != "replaced by the host" {
		t.Errorf("swapped file written: %q", b)
	}
	// Never through a symlink or into a directory.
	mustSymlink(t, d+"/new", d+"/link")
	_, err = f.WriteFile(d+"/link", []byte("x"), false, 0o600)
	wantErrno(t, err, unix.ELOOP)
	mustMkdir(t, d+"/sub")
	_, err = f.WriteFile(d+"/sub", []byte("x"), false, 0o600)
	wantErrno(t, err, unix.EISDIR)
	_, err = dir.WriteFile("../x", nil, WriteOptions{})
	wantErrno(t, err, unix.EINVAL)
	noTemp(t, d)
}

func TestWriteFileFailureLeavesNoTemp(t *testing.T) {
	requireRoot(t)
	d := tempDir(t)
	mountTmpfs(t, d, "size=64k")
	mustWrite(t, d+"/f", "old")
	f := newFS(t)
	_, err := f.WriteFile(d+"/f", make([]byte, 1<<20), false, 0o644)
	wantErrno(t, err, unix.ENOSPC)
	if Code(err).String() != "limit" {
		t.Errorf("code %v", Code(err))
	}
	if b, _ := os.ReadFile(d + "/f"); string(b) != "old" {
		t.Errorf("target changed: %q", b)
	}
	noTemp(t, d)
}

func TestMkdir(t *testing.T) {
	f := newFS(t)
	d := tempDir(t)
	if err := f.Mkdir(d+"/x", 0o750); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(d + "/x"); !st.IsDir() || st.Mode().Perm() != 0o750 {
		t.Errorf("mode %v", st.Mode())
	}
	wantErrno(t, f.Mkdir(d+"/x", 0o750), unix.EEXIST)
	wantErrno(t, f.Mkdir(d+"/missing/x", 0o750), unix.ENOENT)
	mustSymlink(t, d+"/x", d+"/l")
	wantErrno(t, f.Mkdir(d+"/l/y", 0o750), unix.ELOOP)
}

func TestRemove(t *testing.T) {
	f := newFS(t)
	d := tempDir(t)
	mustMkdir(t, d+"/outside")
	mustWrite(t, d+"/outside/keep", "sentinel")
	mustMkdir(t, d+"/tree/a/b")
	mustWrite(t, d+"/tree/a/b/f", "x")
	mustSymlink(t, d+"/outside", d+"/tree/a/link")
	mustSymlink(t, d+"/outside/keep", d+"/tree/filelink")

	wantErrno(t, f.Remove(d+"/tree", false), unix.ENOTEMPTY)
	if err := f.Remove(d+"/tree", true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(d + "/tree"); !os.IsNotExist(err) {
		t.Error("tree still there")
	}
	if b, err := os.ReadFile(d + "/outside/keep"); err != nil || string(b) != "sentinel" {
		t.Errorf("symlink target touched: %q %v", b, err)
	}
	// A symlink itself is removed, not its target.
	mustSymlink(t, d+"/outside", d+"/l")
	if err := f.Remove(d+"/l", true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(d + "/outside/keep"); err != nil {
		t.Error("target removed")
	}
	// The object removed is the one looked up.
	mustWrite(t, d+"/g", "a")
	o := lookup(t, f, d+"/g")
	os.Remove(d + "/g")
	mustWrite(t, d+"/g", "b")
	if err := o.Remove(false); !errors.Is(err, ErrChanged) {
		t.Errorf("Remove of a swapped name: %v", err)
	}
	wantErrno(t, f.Remove("/", true), unix.EBUSY)
}

func TestRemoveStaysOnMount(t *testing.T) {
	requireRoot(t)
	f := newFS(t)
	d := tempDir(t)
	mustMkdir(t, d+"/tree/m")
	mountTmpfs(t, d+"/tree/m", "size=1m")
	mustWrite(t, d+"/tree/m/keep", "sentinel")
	err := f.Remove(d+"/tree", true)
	wantErrno(t, err, unix.EXDEV)
	if b, _ := os.ReadFile(d + "/tree/m/keep"); string(b) != "sentinel" {
		t.Error("file on the inner mount removed")
	}
}

func TestChmodChownByDescriptor(t *testing.T) {
	f := newFS(t)
	d := tempDir(t)
	mustWrite(t, d+"/f", "x")
	if err := unix.Mkfifo(d+"/fifo", 0o600); err != nil {
		t.Fatal(err)
	}
	mustSymlink(t, d+"/f", d+"/l")
	for _, p := range []string{d + "/f", d + "/fifo"} {
		if err := lookup(t, f, p).Chmod(0o4751); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		var st unix.Stat_t
		unix.Lstat(p, &st)
		if st.Mode&07777 != 0o4751 {
			t.Errorf("%s: mode %#o", p, st.Mode&07777)
		}
	}
	l := lookup(t, f, d+"/l")
	wantErrno(t, l.Chmod(0o777), unix.EOPNOTSUPP)
	if os.Geteuid() != 0 {
		return
	}
	// chown of a symlink changes the link, not its target.
	if err := l.Chown(4321, 8765); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	unix.Stat(d+"/f", &st)
	if st.Uid == 4321 {
		t.Error("chown followed the symlink")
	}
	unix.Lstat(d+"/l", &st)
	if st.Uid != 4321 || st.Gid != 8765 {
		t.Errorf("link owner %d:%d", st.Uid, st.Gid)
	}
}
