package host

import (
	"crypto/rand"
	"encoding/hex"
	"time"

	"golang.org/x/sys/unix"
)

// verifyEntry checks that entry o.name of o.parent still holds the
// looked-up inode; callers hold o.mu.
func (o *Object) verifyEntry(op string) error {
	if o.parent < 0 {
		return pathErr(op, o.path, unix.EBUSY)
	}
	var st unix.Stat_t
	if err := unix.Fstatat(o.parent, o.name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || !ToInfo(&st).same(o.info) {
		return pathErr(op, o.path, ErrChanged)
	}
	return nil
}

// RenameTo moves the object to entry name of directory dst. existing is
// the destination the caller looked up and authorised to be replaced; nil
// means the name must be free (RENAME_NOREPLACE). Neither side is followed
// when it is a symlink: rename works on directory entries. A different
// mount gives EXDEV.
func (o *Object) RenameTo(dst *Object, name string, existing *Info) error {
	if err := o.begin("rename"); err != nil {
		return err
	}
	defer o.mu.RUnlock()
	if err := dst.dirOp("rename", name); err != nil {
		return err
	}
	defer dst.mu.RUnlock()
	if err := o.verifyEntry("rename"); err != nil {
		return err
	}
	flags := uint(unix.RENAME_NOREPLACE)
	if existing != nil {
		if now, err := dst.entryInfo(name); err != nil || !now.same(*existing) {
			return pathErr("rename", dst.childPath(name), ErrChanged)
		}
		flags = 0
	}
	if err := unix.Renameat2(o.parent, o.name, dst.fd, name, flags); err != nil {
		return pathErr("rename", o.path, err)
	}
	return nil
}

// Symlink makes entry name of directory d a symlink whose text is target.
// The text is never resolved here. With existing (the entry the caller
// looked up and authorised), the link is made under a temporary name and
// renamed over it, so the name always holds either the old entry or the
// new link; a directory is never replaced.
func (d *Object) Symlink(target, name string, existing *Info) error {
	if err := d.dirOp("symlink", name); err != nil {
		return err
	}
	defer d.mu.RUnlock()
	path := d.childPath(name)
	if existing == nil {
		if err := unix.Symlinkat(target, d.fd, name); err != nil {
			return pathErr("symlink", path, err)
		}
		return nil
	}
	if existing.Kind == KindDir {
		return pathErr("symlink", path, unix.EISDIR)
	}
	var b [12]byte
	rand.Read(b[:])
	tmp := ".rex-tmp-" + hex.EncodeToString(b[:])
	if err := unix.Symlinkat(target, d.fd, tmp); err != nil {
		return pathErr("symlink", path, err)
	}
	err := error(nil)
	if now, e := d.entryInfo(name); e != nil || !now.same(*existing) {
		err = ErrChanged
	} else {
		err = unix.Renameat(d.fd, tmp, d.fd, name)
	}
	if err != nil {
		unix.Unlinkat(d.fd, tmp, 0)
		return pathErr("symlink", path, err)
	}
	return nil
}

// SetXattr sets extended attribute name on a regular file or directory,
// through a descriptor reopened and verified by inode; symlinks, devices,
// FIFOs and sockets are refused (user.* attributes do not apply to them,
// and opening them has side effects).
func (o *Object) SetXattr(name string, value []byte) error {
	if err := o.begin("setxattr"); err != nil {
		return err
	}
	defer o.mu.RUnlock()
	fd, err := o.contentFD("setxattr")
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Fsetxattr(fd, name, value, 0); err != nil {
		return pathErr("setxattr", o.path, err)
	}
	return nil
}

// contentFD opens a regular file O_RDONLY or a directory, verified to be
// the looked-up inode. The caller closes it; o.mu is held.
func (o *Object) contentFD(op string) (int, error) {
	if o.info.Kind == KindDir {
		d, err := o.openDir(op)
		if err != nil {
			return -1, err
		}
		fd, err := unix.Dup(int(d.Fd()))
		d.Close()
		if err != nil {
			return -1, pathErr(op, o.path, err)
		}
		return fd, nil
	}
	f, err := o.reopen(op, unix.O_RDONLY)
	if err != nil {
		return -1, err
	}
	fd, err := unix.Dup(int(f.Fd()))
	f.Close()
	if err != nil {
		return -1, pathErr(op, o.path, err)
	}
	return fd, nil
}

// SetTimes sets the access and modification times of a regular file or
// directory through a verified descriptor; a zero time means now.
func (o *Object) SetTimes(atime, mtime time.Time) error {
	if err := o.begin("touch"); err != nil {
		return err
	}
	defer o.mu.RUnlock()
	fd, err := o.contentFD("touch")
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ts := [2]unix.Timespec{{Nsec: unix.UTIME_NOW}, {Nsec: unix.UTIME_NOW}}
	if !atime.IsZero() {
		ts[0] = unix.NsecToTimespec(atime.UnixNano())
	}
	if !mtime.IsZero() {
		ts[1] = unix.NsecToTimespec(mtime.UnixNano())
	}
	if err := unix.UtimesNanoAt(fd, "", ts[:], unix.AT_EMPTY_PATH); err != nil {
		return pathErr("touch", o.path, err)
	}
	return nil
}

// Child looks up entry name of directory d without following it, from d's
// own descriptor: no path is walked again, so a walk of a tree stays in the
// directory that was authorised even when the tree is renamed meanwhile.
func (d *Object) Child(name string) (*Object, error) {
	if err := d.dirOp("lookup", name); err != nil {
		return nil, err
	}
	defer d.mu.RUnlock()
	c := &Object{path: d.childPath(name), name: name, fd: -1, parent: -1}
	var err error
	if c.parent, err = unix.Dup(d.fd); err == nil {
		c.fd, err = openat2(d.fd, name, unix.O_PATH|unix.O_NOFOLLOW)
	}
	if err == nil {
		err = c.stat()
	}
	if err != nil {
		c.closeFds()
		return nil, pathErr("lookup", c.path, err)
	}
	return c, nil
}

// MountID is the id of the mount the object is on (statx STATX_MNT_ID),
// for walks that must not cross into another mount even when it is a bind
// mount of the same file system (same st_dev).
func (o *Object) MountID() (uint64, error) {
	if err := o.begin("statx"); err != nil {
		return 0, err
	}
	defer o.mu.RUnlock()
	var stx unix.Statx_t
	if err := unix.Statx(o.fd, "", unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID, &stx); err != nil {
		return 0, pathErr("statx", o.path, err)
	}
	if stx.Mask&unix.STATX_MNT_ID == 0 {
		return 0, pathErr("statx", o.path, unix.ENOSYS)
	}
	return stx.Mnt_id, nil
}

// ParentInfo is the fstat of the directory the object was found in, for
// authorising "open on the parent Dir" without a second lookup; false for
// a mount root, which has no parent on its own mount.
func (o *Object) ParentInfo() (Info, bool) {
	if err := o.beginRead("fstat"); err != nil {
		return Info{}, false
	}
	defer o.mu.RUnlock()
	if o.parent < 0 || o.mountLeaf {
		return Info{}, false
	}
	var st unix.Stat_t
	if err := unix.Fstat(o.parent, &st); err != nil {
		return Info{}, false
	}
	return ToInfo(&st), true
}
