package host

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// maxDepth bounds a recursive removal; each level holds one descriptor.
const maxDepth = 256

// WriteOptions says how WriteFile treats the target.
type WriteOptions struct {
	// Append writes at the end of the file instead of replacing it.
	Append bool
	// Perm is the permission of a new file (07777, umask not applied).
	Perm uint32
	// Existing is the file the caller looked up and authorised to be
	// replaced or appended to; WriteFile fails with ErrChanged when the
	// name no longer holds that inode. Nil means the file must not exist:
	// it is created with O_EXCL semantics, and EEXIST if it appeared.
	Existing *Info
}

// childPath names an entry of directory d in errors.
func (d *Object) childPath(name string) string {
	if d.path == "/" {
		return "/" + name
	}
	return d.path + "/" + name
}

// dirOp starts an operation on entry name of directory d.
func (d *Object) dirOp(op, name string) error {
	if err := d.begin(op); err != nil {
		return err
	}
	switch {
	case !validName(name):
		d.mu.RUnlock()
		return pathErr(op, d.childPath(name), unix.EINVAL)
	case d.info.Kind != KindDir:
		d.mu.RUnlock()
		return pathErr(op, d.childPath(name), unix.ENOTDIR)
	}
	return nil
}

// entryInfo is fstatat of one entry of d, not following a symlink.
func (d *Object) entryInfo(name string) (Info, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return Info{}, err
	}
	return ToInfo(&st), nil
}

// WriteFile writes data to entry name of directory d and returns the number
// of bytes written. Without Append the write is atomic: the data goes to a
// temporary file created O_EXCL in d, is fsynced, takes the mode and owner
// of the file it replaces (or Perm for a new one), and is renamed over the
// target, so readers see the old or the new content, never a mix, and a
// hard link elsewhere keeps the old content. A failure leaves no temporary
// file behind.
func (d *Object) WriteFile(name string, data []byte, opt WriteOptions) (int64, error) {
	if err := d.dirOp("write", name); err != nil {
		return 0, err
	}
	defer d.mu.RUnlock()
	path := d.childPath(name)
	if opt.Existing != nil {
		if err := checkReplaceable(path, *opt.Existing); err != nil {
			return 0, err
		}
		if now, err := d.entryInfo(name); err != nil || !now.same(*opt.Existing) {
			return 0, pathErr("write", path, ErrChanged)
		}
	} else if _, err := d.entryInfo(name); err != unix.ENOENT {
		if err == nil {
			err = unix.EEXIST
		}
		return 0, pathErr("write", path, err)
	}
	if opt.Append {
		return d.appendFile(path, name, data, opt)
	}
	tmp, f, err := d.createTemp()
	if err != nil {
		return 0, pathErr("write", path, err)
	}
	err = fillTemp(f, data, opt)
	if err == nil && opt.Existing != nil {
		// The check above and the rename below are not one step; this
		// narrows the window and a host that races it only gets its own
		// entry replaced by authorised content.
		if now, e := d.entryInfo(name); e != nil || !now.same(*opt.Existing) {
			err = ErrChanged
		}
		if err == nil {
			err = unix.Renameat(d.fd, tmp, d.fd, name)
		}
	} else if err == nil {
		err = unix.Renameat2(d.fd, tmp, d.fd, name, unix.RENAME_NOREPLACE)
	}
	f.Close()
	if err != nil {
		unix.Unlinkat(d.fd, tmp, 0)
		return 0, pathErr("write", path, err)
	}
	return int64(len(data)), nil
}

// checkReplaceable refuses to write through anything but a regular file.
func checkReplaceable(path string, in Info) error {
	switch in.Kind {
	case KindFile:
		return nil
	case KindDir:
		return pathErr("write", path, unix.EISDIR)
	case KindSymlink:
		return pathErr("write", path, unix.ELOOP)
	}
	return pathErr("write", path, ErrNotRegular)
}

// fillTemp writes, syncs and sets mode and owner of a new temporary file.
// fchown comes before fchmod because chown clears the set-id bits.
func fillTemp(f *os.File, data []byte, opt WriteOptions) error {
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	fd := int(f.Fd())
	mode := opt.Perm & 07777
	if e := opt.Existing; e != nil {
		if err := unix.Fchown(fd, int(e.UID), int(e.GID)); err != nil {
			return err
		}
		mode = e.Mode
	}
	return unix.Fchmod(fd, mode)
}

// createTemp makes an empty file with a random name in d, O_EXCL.
func (d *Object) createTemp() (string, *os.File, error) {
	var b [12]byte
	for range 100 {
		rand.Read(b[:])
		name := ".rex-tmp-" + hex.EncodeToString(b[:])
		fd, err := openat2Mode(d.fd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW, 0o600)
		if err == unix.EEXIST {
			continue
		}
		if err != nil {
			return "", nil, err
		}
		return name, os.NewFile(uintptr(fd), name), nil
	}
	return "", nil, unix.EEXIST
}

// appendFile appends to the existing file (verified) or creates it O_EXCL.
func (d *Object) appendFile(path, name string, data []byte, opt WriteOptions) (int64, error) {
	fd := -1
	var err error
	if opt.Existing == nil {
		fd, err = openat2Mode(d.fd, name, unix.O_WRONLY|unix.O_APPEND|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW, 0o600)
		if err == nil {
			err = unix.Fchmod(fd, opt.Perm&07777)
		}
	} else {
		fd, err = openat2(d.fd, name, unix.O_WRONLY|unix.O_APPEND|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY)
		if err == unix.ENXIO {
			err = ErrChanged
		}
		if err == nil {
			var st unix.Stat_t
			if err = unix.Fstat(fd, &st); err == nil {
				if now := ToInfo(&st); !now.same(*opt.Existing) || now.Kind != KindFile {
					err = ErrChanged
				}
			}
		}
		if err == nil {
			var fl int
			if fl, err = unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0); err == nil {
				_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl&^unix.O_NONBLOCK)
			}
		}
	}
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		return 0, pathErr("write", path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	n, err := f.Write(data)
	if err != nil {
		return int64(n), pathErr("write", path, unwrapPath(err))
	}
	return int64(n), nil
}

// Mkdir creates one directory, entry name of d, with exactly perm (the
// umask is undone with fchmod on the new directory, verified by inode).
func (d *Object) Mkdir(name string, perm uint32) error {
	if err := d.dirOp("mkdir", name); err != nil {
		return err
	}
	defer d.mu.RUnlock()
	path := d.childPath(name)
	if err := unix.Mkdirat(d.fd, name, perm&0o777); err != nil {
		return pathErr("mkdir", path, err)
	}
	fd, err := openat2(d.fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW)
	if err != nil {
		return pathErr("mkdir", path, err)
	}
	defer unix.Close(fd)
	if err := unix.Fchmod(fd, perm&07777); err != nil {
		return pathErr("mkdir", path, err)
	}
	return nil
}

// Remove deletes the object from its parent directory after checking that
// the name still holds it. With recursive, a directory's contents go first,
// walked by descriptors: symlinks are removed, never followed, and the walk
// never leaves the directory's mount (EXDEV).
func (o *Object) Remove(recursive bool) error {
	if err := o.begin("remove"); err != nil {
		return err
	}
	defer o.mu.RUnlock()
	if o.parent < 0 {
		return pathErr("remove", o.path, unix.EBUSY)
	}
	var st unix.Stat_t
	if err := unix.Fstatat(o.parent, o.name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || !ToInfo(&st).same(o.info) {
		return pathErr("remove", o.path, ErrChanged)
	}
	if o.info.Kind != KindDir {
		if err := unix.Unlinkat(o.parent, o.name, 0); err != nil {
			return pathErr("remove", o.path, err)
		}
		return nil
	}
	if recursive {
		d, err := o.openDir("remove")
		if err != nil {
			return err
		}
		err = removeContents(d, o.info.Dev, 0)
		d.Close()
		if err != nil {
			return pathErr("remove", o.path, err)
		}
	}
	if err := unix.Unlinkat(o.parent, o.name, unix.AT_REMOVEDIR); err != nil {
		return pathErr("remove", o.path, err)
	}
	return nil
}

// removeContents empties the open directory d.
func removeContents(d *os.File, dev uint64, depth int) error {
	if depth >= maxDepth {
		return ErrTooDeep
	}
	names, err := d.Readdirnames(-1)
	if err != nil {
		return unwrapPath(err)
	}
	dfd := int(d.Fd())
	for _, n := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(dfd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if err == unix.ENOENT {
				continue
			}
			return err
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			if st.Dev != dev {
				return unix.EXDEV
			}
			cfd, err := openat2(dfd, n, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW)
			if err != nil {
				return err
			}
			child := os.NewFile(uintptr(cfd), n)
			var cst unix.Stat_t
			err = unix.Fstat(cfd, &cst)
			if err == nil && (cst.Dev != st.Dev || cst.Ino != st.Ino) {
				err = ErrChanged
			}
			if err == nil {
				err = removeContents(child, dev, depth+1)
			}
			child.Close()
			if err != nil {
				return err
			}
			if err := unix.Unlinkat(dfd, n, unix.AT_REMOVEDIR); err != nil && err != unix.ENOENT {
				return err
			}
			continue
		}
		if err := unix.Unlinkat(dfd, n, 0); err != nil && err != unix.ENOENT {
			return err
		}
	}
	return nil
}

// WriteFile writes data to path: the parent is looked up without following
// symlinks, an existing regular file is replaced atomically (keeping its
// mode and owner) or appended to, a missing one is created with perm. It is
// the one-call form of LookupParent plus Object.WriteFile for callers that
// authorise on the path alone.
func (f *FS) WriteFile(path string, data []byte, append bool, perm uint32) (int64, error) {
	d, name, err := f.LookupParent(path)
	if err != nil {
		return 0, err
	}
	defer d.Close()
	opt := WriteOptions{Append: append, Perm: perm}
	in, err := d.entryInfo(name)
	switch {
	case err == nil:
		opt.Existing = &in
	case err != unix.ENOENT:
		return 0, pathErr("write", path, err)
	}
	return d.WriteFile(name, data, opt)
}

// Mkdir creates one directory level at path.
func (f *FS) Mkdir(path string, perm uint32) error {
	d, name, err := f.LookupParent(path)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Mkdir(name, perm)
}

// Remove deletes path without following symlinks; see Object.Remove.
func (f *FS) Remove(path string, recursive bool) error {
	o, err := f.lookup(path)
	if err != nil {
		return err
	}
	defer o.Close()
	return o.Remove(recursive)
}

// Chmod sets the permission bits of the object itself, through its O_PATH
// descriptor (fchmodat2 with AT_EMPTY_PATH), so no name is resolved again
// and a symlink swapped in cannot redirect it. Symlinks have no mode of
// their own on Linux: EOPNOTSUPP.
func (o *Object) Chmod(mode uint32) error {
	if err := o.begin("chmod"); err != nil {
		return err
	}
	defer o.mu.RUnlock()
	if o.info.Kind == KindSymlink {
		return pathErr("chmod", o.path, unix.EOPNOTSUPP)
	}
	empty, err := unix.BytePtrFromString("")
	if err != nil {
		return pathErr("chmod", o.path, err)
	}
	_, _, errno := unix.Syscall6(unix.SYS_FCHMODAT2, uintptr(o.fd), uintptr(unsafe.Pointer(empty)),
		uintptr(mode&07777), unix.AT_EMPTY_PATH, 0, 0)
	if errno != 0 {
		return pathErr("chmod", o.path, errno)
	}
	return nil
}

// Chown sets the owner and group of the object itself (a symlink's own),
// through its O_PATH descriptor; -1 leaves that id unchanged.
func (o *Object) Chown(uid, gid int) error {
	if err := o.begin("chown"); err != nil {
		return err
	}
	defer o.mu.RUnlock()
	if err := unix.Fchownat(o.fd, "", uid, gid, unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return pathErr("chown", o.path, err)
	}
	return nil
}
