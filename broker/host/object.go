package host

import (
	"io"
	"math"
	"os"
	"sort"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rex-sh/rex/ipc"
)

// Kind is the type of a file system object, as scripts see it.
type Kind string

// Kinds of objects.
const (
	KindFile    Kind = "file"
	KindDir     Kind = "dir"
	KindSymlink Kind = "symlink"
	KindFIFO    Kind = "fifo"
	KindSocket  Kind = "socket"
	KindDevice  Kind = "device"
)

// Info describes one object: from fstat or statx of a descriptor on it,
// or (for FS.LookupToRead) from statx of its entry in a directory held
// open.
type Info struct {
	Kind  Kind
	Mode  uint32 // permission bits, 07777
	UID   uint32
	GID   uint32
	Size  int64
	MTime time.Time
	Nlink uint64
	Dev   uint64
	Ino   uint64
}

func kindOf(mode uint32) Kind {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return KindFile
	case unix.S_IFDIR:
		return KindDir
	case unix.S_IFLNK:
		return KindSymlink
	case unix.S_IFIFO:
		return KindFIFO
	case unix.S_IFSOCK:
		return KindSocket
	}
	return KindDevice
}

// ToInfo converts a stat result.
func ToInfo(st *unix.Stat_t) Info {
	return Info{
		Kind:  kindOf(st.Mode),
		Mode:  st.Mode & 07777,
		UID:   st.Uid,
		GID:   st.Gid,
		Size:  st.Size,
		MTime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec),
		Nlink: uint64(st.Nlink),
		Dev:   st.Dev,
		Ino:   st.Ino,
	}
}

// statxInfo converts a statx result that has every field of
// statxInfoMask. Dev is encoded as fstat encodes st_dev, so that Infos from
// either compare with same.
func statxInfo(stx *unix.Statx_t) Info {
	return Info{
		Kind:  kindOf(uint32(stx.Mode)),
		Mode:  uint32(stx.Mode) & 07777,
		UID:   stx.Uid,
		GID:   stx.Gid,
		Size:  int64(stx.Size),
		MTime: time.Unix(stx.Mtime.Sec, int64(stx.Mtime.Nsec)),
		Nlink: uint64(stx.Nlink),
		Dev:   unix.Mkdev(stx.Dev_major, stx.Dev_minor),
		Ino:   stx.Ino,
	}
}

const statxInfoMask = unix.STATX_TYPE | unix.STATX_MODE | unix.STATX_NLINK | unix.STATX_UID |
	unix.STATX_GID | unix.STATX_MTIME | unix.STATX_INO | unix.STATX_SIZE

// same reports whether a and b are the same inode.
func (i Info) same(b Info) bool { return i.Dev == b.Dev && i.Ino == b.Ino }

// Object is an O_PATH handle on one looked-up object, and for a non-root
// object an O_PATH handle on the directory it was found in. Every later
// operation goes through these descriptors and checks that it reaches the
// same inode, so what the caller authorised from Info is what it operates
// on. An Object from Describe uses neither and one from LookupToRead only
// the directory (fd is -1): no operation works on them but Info, and for
// the latter the reads, which check the attributes too. (A described
// object keeps a descriptor on itself until Close, unused: see spare.)
// Methods may be called concurrently with each other and with Close.
type Object struct {
	mu     sync.RWMutex // write-held by Close, so no method uses a closed (and maybe reused) fd number
	fd     int          // O_PATH|O_NOFOLLOW on the object
	parent int          // O_PATH on the parent directory; -1 for a mount root
	name   string       // entry name in parent
	// mountLeaf: the object is a file mount root, so reopening it by name
	// must cross that one mount.
	mountLeaf bool
	path      string
	info      Info
	// spare holds descriptors the object no longer uses (a described
	// object's own and its mount's anchor), the first nspare of
	// them. They are closed with the object rather than at once, so that
	// the caller can answer first: the close of a last reference is paid
	// as the system call returns, about a microsecond each, and a stat's
	// reply need not wait for it. No method reads them.
	spare  [2]int
	nspare int
}

// keepSpare hands fd to o, to be closed with it.
func (o *Object) keepSpare(fd int) {
	o.spare[o.nspare] = fd
	o.nspare++
}

// Path is the canonical path where the object was found; after a followed
// Lookup, the resolved one.
func (o *Object) Path() string { return o.path }

// Info is the object's fstat at lookup time.
func (o *Object) Info() Info { return o.info }

// Close releases the descriptors. It is idempotent.
func (o *Object) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closeFds()
	return nil
}

func (o *Object) closeFds() {
	if o.fd >= 0 {
		unix.Close(o.fd)
		o.fd = -1
	}
	if o.parent >= 0 {
		unix.Close(o.parent)
		o.parent = -1
	}
	for _, fd := range o.spare[:o.nspare] {
		unix.Close(fd)
	}
	o.nspare = 0
}

func (o *Object) stat() error {
	var st unix.Stat_t
	if err := unix.Fstat(o.fd, &st); err != nil {
		return err
	}
	o.info = ToInfo(&st)
	return nil
}

// describe fills o.info with statx of entry o.name of o.parent, for
// LookupToRead. Like the confined open of lookupIn it follows no symlink (the
// name is one component and the leaf is not followed), triggers no
// automount and does not cross into a mount: an entry that is a mount point
// gives EXDEV, for lookup to start again from that mount. done is false
// for a symlink, whose target a caller reads through a descriptor, and
// when the kernel's statx lacks a field: the caller then opens the entry.
func (o *Object) describe() (done bool, err error) {
	var stx unix.Statx_t
	err = unix.Statx(o.parent, o.name, unix.AT_SYMLINK_NOFOLLOW|unix.AT_NO_AUTOMOUNT|unix.AT_STATX_SYNC_AS_STAT,
		statxInfoMask, &stx)
	switch {
	case err != nil:
		return false, err
	case stx.Mask&statxInfoMask != statxInfoMask || stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT == 0:
		return false, nil
	case stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0:
		return false, unix.EXDEV
	}
	info := statxInfo(&stx)
	if info.Kind == KindSymlink {
		return false, nil
	}
	o.info = info
	return true, nil
}

// describeAt fills o.info for Describe, from one confined walk of rest
// below anchor to the entry itself, opened O_PATH|O_NOFOLLOW, and statx of
// that descriptor. The walk follows no symlink and takes a leaf symlink as
// itself; it crosses no mount, so a mount point, even as the leaf, gives
// EXDEV, for lookup to start again from that mount; and O_PATH triggers
// no automount. That is what describe has to check of a statx by name.
// A statx of a descriptor costs ~0.8 µs less here than one by name, which
// looks the name up again, and the walk costs the same whether it ends at
// the parent or at the entry (BenchmarkDescribe against
// BenchmarkLookupToRead). The descriptor is kept unused until
// Close (see spare). done is false, and nothing is held, for a symlink,
// whose target a caller reads through a descriptor it holds, and when the
// kernel's statx lacks a field: the caller then looks the entry up as
// Lookup does.
func (o *Object) describeAt(anchor int, rest string) (done bool, err error) {
	fd, err := openat2(anchor, rest, unix.O_PATH|unix.O_NOFOLLOW)
	if err != nil {
		return false, err
	}
	var stx unix.Statx_t
	err = unix.Statx(fd, "", unix.AT_EMPTY_PATH|unix.AT_STATX_SYNC_AS_STAT, statxInfoMask, &stx)
	switch {
	case err != nil:
	case stx.Mask&statxInfoMask != statxInfoMask:
	case stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0:
		err = unix.EXDEV // the walk does not cross a mount; kept as a guard
	default:
		if info := statxInfo(&stx); info.Kind != KindSymlink {
			o.info = info
			o.keepSpare(fd)
			return true, nil
		}
	}
	unix.Close(fd)
	return false, err
}

// begin takes the read lock and fails once the object is closed, or when
// no descriptor pins it (Describe, LookupToRead).
func (o *Object) begin(op string) error {
	o.mu.RLock()
	if o.fd < 0 {
		o.mu.RUnlock()
		return pathErr(op, o.path, os.ErrClosed)
	}
	return nil
}

// beginRead is begin for the operations that read the object by name from
// its parent, which an object from LookupToRead allows.
func (o *Object) beginRead(op string) error {
	o.mu.RLock()
	if o.fd < 0 && o.parent < 0 {
		o.mu.RUnlock()
		return pathErr(op, o.path, os.ErrClosed)
	}
	return nil
}

// contentCheck refuses what is never opened for content. A symlink is ELOOP
// (it is not followed), a directory EISDIR, anything else but a regular file
// ErrNotRegular: FIFOs would block or signal their peer, devices can have
// side effects on open.
func (o *Object) contentCheck(op string) error {
	switch o.info.Kind {
	case KindFile:
		return nil
	case KindSymlink:
		return pathErr(op, o.path, unix.ELOOP)
	case KindDir:
		return pathErr(op, o.path, unix.EISDIR)
	}
	return pathErr(op, o.path, ErrNotRegular)
}

// reopen opens the object's entry for content, by name in the parent
// directory, and verifies it is still the looked-up inode and a regular
// file. O_NONBLOCK keeps a FIFO swapped in meanwhile from blocking; it is
// cleared before the file is handed out.
func (o *Object) reopen(op string, flags uint64) (*os.File, error) {
	fd, err := o.reopenFD(op, flags)
	if err != nil {
		return nil, err
	}
	// F_SETFL only takes the status flags (O_APPEND here) from this value,
	// so no F_GETFL round trip is needed.
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, int(flags)&unix.O_APPEND); err != nil {
		unix.Close(fd)
		return nil, pathErr(op, o.path, err)
	}
	return os.NewFile(uintptr(fd), o.path), nil
}

// reopenFD is reopen's open and check, leaving the descriptor O_NONBLOCK:
// harmless on the regular file it is verified to be, where it is only read
// by the broker itself (ReadAll), never handed out.
func (o *Object) reopenFD(op string, flags uint64) (int, error) {
	if err := o.contentCheck(op); err != nil {
		return -1, err
	}
	if o.parent < 0 {
		return -1, pathErr(op, o.path, unix.EISDIR)
	}
	how := unix.OpenHow{
		Flags:   flags | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_NOCTTY | unix.O_CLOEXEC,
		Resolve: resolveFlags,
	}
	if o.mountLeaf {
		how.Resolve &^= unix.RESOLVE_NO_XDEV
	}
	fd, err := openHow(o.parent, o.name, &how)
	if err != nil {
		if err == unix.ENXIO {
			// A FIFO without a reader was swapped in.
			err = ErrChanged
		}
		return -1, pathErr(op, o.path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, pathErr(op, o.path, err)
	}
	now := ToInfo(&st)
	// Unpinned (LookupToRead), the inode number alone may have been
	// reused: what is opened must also have what was authorised.
	unpinned := o.fd < 0 && (now.UID != o.info.UID || now.GID != o.info.GID || now.Mode != o.info.Mode)
	if !now.same(o.info) || now.Kind != KindFile || unpinned {
		unix.Close(fd)
		return -1, pathErr(op, o.path, ErrChanged)
	}
	return fd, nil
}

// OpenRead opens a regular file O_RDONLY|O_CLOEXEC, verified to be the
// looked-up inode.
func (o *Object) OpenRead() (*os.File, error) {
	if err := o.beginRead("open"); err != nil {
		return nil, err
	}
	defer o.mu.RUnlock()
	return o.reopen("open", unix.O_RDONLY)
}

// OpenWrite opens a regular file O_WRONLY (and O_APPEND if append), without
// truncating it, verified to be the looked-up inode.
func (o *Object) OpenWrite(append bool) (*os.File, error) {
	if err := o.begin("open"); err != nil {
		return nil, err
	}
	defer o.mu.RUnlock()
	flags := uint64(unix.O_WRONLY)
	if append {
		flags |= unix.O_APPEND
	}
	return o.reopen("open", flags)
}

// ReadAll reads a regular file. A file longer than limit fails with an error
// wrapping ErrTooLarge; the length is checked while reading, not from
// fstat, so a growing file or a lying file system cannot exceed it.
func (o *Object) ReadAll(limit int64) ([]byte, error) {
	if err := o.beginRead("open"); err != nil {
		return nil, err
	}
	fd, err := o.reopenFD("open", unix.O_RDONLY)
	o.mu.RUnlock()
	if err != nil {
		return nil, err
	}
	// A plain descriptor, not an os.File: no poller registration, no
	// finalizer, two syscalls fewer per small read.
	f := ipc.FDReader(fd)
	defer unix.Close(fd)
	limit = min(max(limit, 0), math.MaxInt64-1)
	// Size is only a hint for the first allocation, capped so that a
	// sparse giant does not allocate up front.
	capHint := min(max(o.info.Size, 0), limit, 1<<20) + 1
	data, err := readUpTo(f, make([]byte, 0, capHint), limit+1)
	if err != nil {
		return nil, pathErr("read", o.path, err)
	}
	if int64(len(data)) > limit {
		return nil, pathErr("read", o.path, ErrTooLarge)
	}
	return data, nil
}

func readUpTo(r io.Reader, buf []byte, limit int64) ([]byte, error) {
	for int64(len(buf)) < limit {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		end := min(int64(cap(buf)), limit)
		n, err := r.Read(buf[len(buf):end])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
	return buf, nil
}

// Entry is one directory entry, typed with fstatat(AT_SYMLINK_NOFOLLOW) on
// the directory descriptor.
type Entry struct {
	Name   string
	Info   Info
	Target string // symlinks only
}

// ReadDir lists a directory, sorted by name. Entries that vanish while it
// runs are left out.
func (o *Object) ReadDir() ([]Entry, error) {
	if err := o.begin("readdir"); err != nil {
		return nil, err
	}
	defer o.mu.RUnlock()
	d, err := o.openDir("readdir")
	if err != nil {
		return nil, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, pathErr("readdir", o.path, err)
	}
	dfd := int(d.Fd())
	out := make([]Entry, 0, len(names))
	for _, n := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(dfd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if err == unix.ENOENT {
				continue
			}
			return nil, pathErr("readdir", o.path, err)
		}
		e := Entry{Name: n, Info: ToInfo(&st)}
		if e.Info.Kind == KindSymlink {
			e.Target, _ = readlinkat(dfd, n)
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// openDir opens the directory itself for reading entries: through "." of
// the O_PATH descriptor, so no name is resolved again, and verified to be
// the same inode anyway.
func (o *Object) openDir(op string) (*os.File, error) {
	if o.info.Kind != KindDir {
		return nil, pathErr(op, o.path, unix.ENOTDIR)
	}
	fd, err := openat2(o.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return nil, pathErr(op, o.path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || !ToInfo(&st).same(o.info) {
		unix.Close(fd)
		return nil, pathErr(op, o.path, ErrChanged)
	}
	return os.NewFile(uintptr(fd), o.path), nil
}

// Readlink returns a symlink's target text; nothing is resolved.
func (o *Object) Readlink() (string, error) {
	if err := o.begin("readlink"); err != nil {
		return "", err
	}
	defer o.mu.RUnlock()
	if o.info.Kind != KindSymlink {
		return "", pathErr("readlink", o.path, unix.EINVAL)
	}
	t, err := readlinkat(o.fd, "")
	if err != nil {
		return "", pathErr("readlink", o.path, err)
	}
	return t, nil
}

// readlinkChecked returns the target of a symlink that follow may expand:
// never one on procfs, whose links are magic or name the broker's own
// process, and never an empty one.
func (o *Object) readlinkChecked() (string, error) {
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(o.fd, &sfs); err != nil {
		return "", err
	}
	if sfs.Type == unix.PROC_SUPER_MAGIC {
		return "", errMagicLink
	}
	t, err := readlinkat(o.fd, "")
	if err == nil && t == "" {
		err = unix.ENOENT
	}
	return t, err
}

func readlinkat(dirfd int, name string) (string, error) {
	for size := 256; size <= unix.PathMax*2; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
	return "", unix.ENAMETOOLONG
}
