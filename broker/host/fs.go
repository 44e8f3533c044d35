package host

import (
	"errors"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// resolveFlags confine every openat2 of this package: never above the
// anchor, never through a magic link (/proc/self/root, /proc/N/fd/M), never
// across a mount, never through a symlink. Following is done in user space
// (see follow), one verified component at a time.
const resolveFlags = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS |
	unix.RESOLVE_NO_XDEV | unix.RESOLVE_NO_SYMLINKS

// maxLinks is the number of symlinks one Lookup may follow, as the kernel's
// MAXSYMLINKS.
const maxLinks = 40

// FS resolves canonical host paths to descriptors. It is safe for
// concurrent use.
type FS struct {
	root  int // O_PATH descriptor on the broker's "/"
	watch *mountWatch

	mu     sync.Mutex // guards mounts, loaded, polled and the poll state of watch
	mounts mountTable
	loaded bool      // mounts has been read
	polled time.Time // when watch was last polled
	frozen bool      // tests only: keep the table even when the namespace changes
}

// pollMountsEvery is how often a lookup asks whether the mount table
// changed. The table is only a guide to where lookups start: every anchor
// is checked by mount ID when it is opened, and a lookup that crosses a
// mount the table does not know fails with EXDEV and reads it again (see
// lookupMode; TestMountSwapRefused runs on a stale table). So a table up
// to this old costs at most a retry, never a wrong object, and polling at
// every lookup cost a system call, ~1 µs of each fs.stat.
const pollMountsEvery = time.Millisecond

// New opens the broker's root and its mount table, which the first lookup
// reads: a run that looks nothing up (a standalone hello world) does not
// parse it, ~0.2 ms of a standalone run's CPU here.
func New() (*FS, error) {
	root, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, pathErr("open", "/", err)
	}
	w, err := openMountWatch()
	if err != nil {
		unix.Close(root)
		return nil, err
	}
	return &FS{root: root, watch: w}, nil
}

// Close releases the root descriptor and the mount watch. Objects already
// looked up stay valid.
func (f *FS) Close() error {
	unix.Close(f.root)
	return f.watch.close()
}

// table returns the current mount table, re-reading it when the namespace
// changed since the last call, or always when force is set.
func (f *FS) table(force bool) (mountTable, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.frozen && f.loaded {
		return f.mounts, nil
	}
	if f.loaded && !force && time.Since(f.polled) < pollMountsEvery { // the monotonic clock alone
		return f.mounts, nil
	}
	f.polled = time.Now()
	changed, err := f.watch.changed() // acknowledges the state read below
	if err != nil {
		return nil, err
	}
	if changed || force || !f.loaded {
		t, err := f.watch.read()
		if err != nil {
			return nil, err
		}
		f.mounts, f.loaded = t, true
	}
	return f.mounts, nil
}

// openat2 retries the transient errors of openat2: EINTR, and EAGAIN, which
// the kernel returns for a scoped lookup that raced a rename or mount.
func openat2(dirfd int, path string, flags uint64) (int, error) {
	return openat2Mode(dirfd, path, flags, 0)
}

func openat2Mode(dirfd int, path string, flags uint64, mode uint32) (int, error) {
	return openHow(dirfd, path, &unix.OpenHow{Flags: flags | unix.O_CLOEXEC, Mode: uint64(mode), Resolve: resolveFlags})
}

func openHow(dirfd int, path string, how *unix.OpenHow) (int, error) {
	var err error
	for range 16 {
		var fd int
		fd, err = unix.Openat2(dirfd, path, how)
		if err == nil {
			return fd, nil
		}
		if err != unix.EINTR && err != unix.EAGAIN {
			break
		}
	}
	return -1, err
}

func isDir(fd int) bool {
	var st unix.Stat_t
	return unix.Fstat(fd, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR
}

// errMountMoved: the mount point no longer holds the mount we read.
var errMountMoved = errors.New("mount moved")

// openMountRoot opens the root of mount m by walking from "/" without
// symlinks, and checks with statx that it is that very mount's root: the
// mount table may be stale, or the mount point may have been over-mounted
// or swapped since it was read.
func (f *FS) openMountRoot(m mount) (int, error) {
	how := unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	}
	fd, err := unix.Openat2(f.root, m.point[1:], &how)
	if err != nil {
		return -1, err
	}
	var stx unix.Statx_t
	err = unix.Statx(fd, "", unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID, &stx)
	if err == nil && (stx.Mask&unix.STATX_MNT_ID == 0 || stx.Mnt_id != m.id ||
		stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT == 0 || stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT == 0) {
		err = errMountMoved
	}
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// anchor returns a descriptor on the root of the deepest verified mount
// containing path, and path relative to it ("" for the mount root itself).
// When the deepest mount cannot be verified the next shallower one is used,
// so a stale or swapped mount makes the walk below fail with EXDEV rather
// than go through an unverified mount. owned says whether fd must be closed.
func (f *FS) anchor(t mountTable, path string) (fd int, rest string, owned bool, err error) {
	for m := range t.candidates(path) {
		rest = strings.TrimPrefix(strings.TrimPrefix(path, m.point), "/")
		if m.point == "/" {
			return f.root, rest, false, nil
		}
		fd, err := f.openMountRoot(m)
		if err == nil {
			return fd, rest, true, nil
		}
	}
	// Every mount table has "/"; reaching here means it was unreadable.
	return -1, "", false, unix.EXDEV
}

// lookup opens path without following any symlink. The leaf is opened
// O_PATH|O_NOFOLLOW, so a leaf symlink yields the symlink itself and no
// object is ever opened for content here.
func (f *FS) lookup(path string) (*Object, error) { return f.lookupMode(path, pinned) }

// lookupHow says what lookupIn holds on an object found by name in its
// parent directory.
type lookupHow int

const (
	pinned    lookupHow = iota // a descriptor on it: Lookup
	described                  // nothing: Describe
	unpinned                   // its parent directory: LookupToRead
)

// lookupMode is lookup, or the lookup of Describe or LookupToRead.
func (f *FS) lookupMode(path string, how lookupHow) (*Object, error) {
	if !validPath(path) {
		return nil, pathErr("lookup", path, unix.EINVAL)
	}
	var err error
	for attempt := range 2 {
		var t mountTable
		t, err = f.table(attempt > 0)
		if err != nil {
			return nil, pathErr("lookup", path, err)
		}
		var o *Object
		o, err = f.lookupIn(t, path, how)
		if err == nil {
			return o, nil
		}
		// EXDEV may come from a mount the stale table did not know of.
		if err != unix.EXDEV {
			break
		}
	}
	return nil, pathErr("lookup", path, err)
}

func (f *FS) lookupIn(t mountTable, path string, how lookupHow) (*Object, error) {
	anchor, rest, owned, err := f.anchor(t, path)
	if err != nil {
		return nil, err
	}
	if owned {
		defer func() {
			if anchor >= 0 {
				unix.Close(anchor)
			}
		}()
	}
	o := &Object{path: path, parent: -1, fd: -1}
	switch {
	case rest == "" && isDir(anchor):
		// A directory mount root (or "/"): it has no parent on its own
		// mount, and only directory operations apply, which work from the
		// object itself.
		o.fd, err = openat2(anchor, ".", unix.O_PATH|unix.O_DIRECTORY)
	case rest == "":
		// A file bind-mounted on a file (/etc/resolv.conf in containers):
		// it is reopened by name from its parent directory, the one step
		// allowed to cross into a mount, and checked by inode as always.
		var p *Object
		if p, err = f.lookupIn(t, path[:max(strings.LastIndexByte(path, '/'), 1)], pinned); err == nil {
			o.parent, p.fd = p.fd, -1
			p.closeFds()
			o.name, o.mountLeaf = path[strings.LastIndexByte(path, '/')+1:], true
			o.fd, err = unix.Dup(anchor)
		}
	default:
		if how == described {
			var done bool
			if done, err = o.describeAt(anchor, rest); err != nil {
				return nil, err
			}
			if done {
				if owned { // closed with o, after the caller's reply
					o.keepSpare(anchor)
					anchor = -1
				}
				return o, nil
			}
			how = pinned // a symlink, or a statx short of a field: as Lookup
		}
		dir, name := "", rest
		if i := strings.LastIndexByte(rest, '/'); i >= 0 {
			dir, name = rest[:i], rest[i+1:]
		}
		if dir == "" {
			dir = "."
		}
		o.name = name
		o.parent, err = openat2(anchor, dir, unix.O_PATH|unix.O_DIRECTORY)
		if err == nil && how == unpinned {
			var done bool
			if done, err = o.describe(); err != nil {
				o.closeFds()
				return nil, err
			}
			if done {
				return o, nil
			}
		}
		if err == nil {
			o.fd, err = openat2(o.parent, name, unix.O_PATH|unix.O_NOFOLLOW)
		}
	}
	if err == nil {
		err = o.stat()
	}
	if err != nil {
		o.closeFds()
		return nil, err
	}
	return o, nil
}

// Lookup finds the object at path with no side effect on it: it is opened
// O_PATH, which neither reads, blocks, nor triggers device opens.
//
// Without follow, a symlink anywhere before the leaf fails with ELOOP, and a
// leaf symlink is returned as itself. With follow, symlinks are resolved in
// user space, one component at a time, each step confined like a plain
// lookup; Object.Path then names the resolved location, which the caller
// must authorise again. Symlinks on procfs (magic links like
// /proc/self/root, /proc/self/fd/N, and /proc/self itself, which would
// resolve in the broker's context) are never followed.
//
// Errors are *os.PathError naming path and wrapping a unix.Errno or a
// sentinel of this package.
func (f *FS) Lookup(path string, follow bool) (*Object, error) {
	return f.lookupFollow(path, follow, pinned)
}

// Describe is Lookup for a caller that needs only the object's Info, to
// authorise and answer stat or exists. An object that is neither a symlink
// nor a mount point is opened O_PATH in one confined walk of its whole
// path and described with statx of that descriptor (see
// Object.describeAt), which is cheaper than a walk to its parent and a
// statx of its name there. It comes back with no descriptor in use: every
// operation on it fails as on a closed Object, so nothing can act on
// it beyond its Info. Anything else is exactly Lookup.
func (f *FS) Describe(path string, follow bool) (*Object, error) {
	return f.lookupFollow(path, follow, described)
}

// LookupToRead is Lookup for a caller that only reads the object: stat's
// Info to authorise, then ReadAll or OpenRead. An object that is neither a
// symlink nor a mount point is described with statx, as by Describe, and
// comes back holding only its parent directory, which saves an open, an
// fstat and a close per read. Reading reopens the entry by name from that
// directory, as it always does, and takes it only if it is a regular file
// with the looked-up inode number, owner, group and mode: with no
// descriptor to pin the inode its number could be reused by a new file,
// but never one that differs in anything the caller authorised. Every
// other operation on it fails as on a closed Object.
func (f *FS) LookupToRead(path string, follow bool) (*Object, error) {
	return f.lookupFollow(path, follow, unpinned)
}

func (f *FS) lookupFollow(path string, follow bool, how lookupHow) (*Object, error) {
	o, err := f.lookupMode(path, how)
	if !follow {
		return o, err
	}
	if err == nil && o.info.Kind != KindSymlink {
		return o, nil
	}
	if err != nil && !errors.Is(err, unix.ELOOP) {
		return nil, err
	}
	if o != nil {
		o.Close()
	}
	return f.follow(path)
}

// follow resolves path component by component, expanding symlinks
// textually. Because the resolved prefix never contains a symlink, a ".."
// from a symlink target is applied to the text, which equals the physical
// parent; the walk never steps up through a directory that may have been
// renamed meanwhile.
func (f *FS) follow(path string) (*Object, error) {
	var done []string
	todo := splitPath(path)
	links := 0
	for {
		for len(todo) > 0 && (todo[0] == "" || todo[0] == "." || todo[0] == "..") {
			if todo[0] == ".." && len(done) > 0 {
				done = done[:len(done)-1]
			}
			todo = todo[1:]
		}
		cur := "/" + strings.Join(append(done[:len(done):len(done)], todo[:min(1, len(todo))]...), "/")
		if len(cur) > unix.PathMax {
			return nil, pathErr("lookup", path, unix.ENAMETOOLONG)
		}
		o, err := f.lookup(cur)
		if err != nil {
			return nil, pathErr("lookup", path, unwrapPath(err))
		}
		if o.info.Kind != KindSymlink {
			if len(todo) <= 1 {
				return o, nil
			}
			o.Close()
			if o.info.Kind != KindDir {
				return nil, pathErr("lookup", path, unix.ENOTDIR)
			}
			done = append(done, todo[0])
			todo = todo[1:]
			continue
		}
		if len(todo) == 0 {
			// cur is a prefix already found to be a directory and has
			// become a symlink since: a race, not something to follow.
			o.Close()
			return nil, pathErr("lookup", path, unix.ELOOP)
		}
		target, err := o.readlinkChecked()
		o.Close()
		if err != nil {
			return nil, pathErr("lookup", path, err)
		}
		if links++; links > maxLinks {
			return nil, pathErr("lookup", path, errTooManyLinks)
		}
		if strings.HasPrefix(target, "/") {
			done = done[:0]
		}
		todo = append(splitPath(target), todo[1:]...)
	}
}

// LookupParent returns the directory that holds path (looked up without
// following symlinks) and the leaf name, for creating, replacing or
// removing the leaf through the directory's descriptor.
func (f *FS) LookupParent(path string) (*Object, string, error) {
	if !validPath(path) || path == "/" {
		return nil, "", pathErr("lookup", path, unix.EINVAL)
	}
	i := strings.LastIndexByte(path, '/')
	dir, name := path[:i], path[i+1:]
	if dir == "" {
		dir = "/"
	}
	d, err := f.lookup(dir)
	if err != nil {
		return nil, "", pathErr("lookup", path, unwrapPath(err))
	}
	if k := d.info.Kind; k != KindDir {
		d.Close()
		errno := unix.ENOTDIR
		if k == KindSymlink {
			errno = unix.ELOOP
		}
		return nil, "", pathErr("lookup", path, errno)
	}
	return d, name, nil
}

// validPath accepts only canonical absolute paths: no empty, "." or ".."
// component, no trailing slash, no NUL, within PATH_MAX and NAME_MAX.
func validPath(p string) bool {
	if p == "/" {
		return true
	}
	if len(p) < 2 || p[0] != '/' || len(p) >= unix.PathMax || strings.IndexByte(p, 0) >= 0 {
		return false
	}
	for c := range strings.SplitSeq(p[1:], "/") { // no slice: every lookup checks its path
		if !validName(c) {
			return false
		}
	}
	return true
}

// validName accepts one directory entry name.
func validName(c string) bool {
	return c != "" && c != "." && c != ".." && len(c) <= 255 &&
		strings.IndexByte(c, '/') < 0 && strings.IndexByte(c, 0) < 0
}

func splitPath(p string) []string {
	return strings.Split(strings.Trim(p, "/"), "/")
}

// unwrapPath strips an *os.PathError so that the caller can re-wrap the
// cause with the path it was asked about.
func unwrapPath(err error) error {
	if u := errors.Unwrap(err); u != nil {
		return u
	}
	return err
}
