package sdk

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"sort"
	"time"

	ros "github.com/risor-io/risor/os"

	"github.com/rex-sh/rex/ipc"
)

// OS is the broker-backed implementation of Risor's os.OS. Risor's os,
// filepath and fmt modules (and print) reach the host only through the OS in
// their context; with this one installed, file operations become the same
// broker requests as the fs module's, checked the same way, and everything
// else answers from inside the sandbox or fails with a clear error.
//
// Go's os functions follow symlinks, so the path operations here ask the
// broker to follow them too; the broker re-authorises the resolved target.
type OS struct {
	c   Caller
	out *Output
}

var _ ros.OS = (*OS)(nil)

// NewOS returns an OS that sends file operations through c and writes
// stdout into out.
func NewOS(c Caller, out *Output) *OS { return &OS{c: c, out: out} }

// errUnsupported is returned by everything rex does not offer to scripts.
func errUnsupported(what string) error {
	return ipc.Errorf(ipc.CodeUnsupported, "%s is not supported in rex", what)
}

// ---- files ---------------------------------------------------------------

// ReadFile reads a whole file through the broker, like fs.read_bytes.
func (o *OS) ReadFile(name string) ([]byte, error) { return readFile(o.c, name, true) }

// WriteFile replaces a file's contents through the broker, like fs.write.
func (o *OS) WriteFile(name string, data []byte, perm ros.FileMode) error {
	_, err := writeFile(o.c, name, data, false, uint32(perm.Perm()))
	return err
}

// Stat describes an object through the broker, like fs.stat.
func (o *OS) Stat(name string) (ros.FileInfo, error) {
	var fi ipc.FileInfo
	if err := callNoFD(o.c, ipc.OpStat, &ipc.PathReq{Path: name, Follow: true}, &fi); err != nil {
		return nil, err
	}
	return fileInfo{fi}, nil
}

// ReadDir lists a directory through the broker, hidden entries included as
// in Go, sorted by name.
func (o *OS) ReadDir(name string) ([]ros.DirEntry, error) {
	entries, err := list(o.c, name, true)
	if err != nil {
		return nil, err
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name < entries[j].Name })
	out := make([]ros.DirEntry, len(entries))
	for i, e := range entries {
		out[i] = dirEntry{fileInfo{e}}
	}
	return out, nil
}

// Open opens a file for reading through the broker.
func (o *OS) Open(name string) (ros.File, error) {
	return openFile(o.c, &ipc.OpenReq{Path: name, Follow: true})
}

// Create truncates or creates a file and opens it for writing. The broker
// has no truncating open, so the truncation is an atomic write of nothing,
// authorised on its own, followed by the open.
func (o *OS) Create(name string) (ros.File, error) {
	return o.OpenFile(name, ros.O_RDWR|ros.O_CREATE|ros.O_TRUNC, 0o666)
}

// OpenFile maps Go's open flags onto an OpenReq. Flags the broker cannot
// honour exactly (O_EXCL, O_SYNC) are refused rather than approximated.
func (o *OS) OpenFile(name string, flag int, perm ros.FileMode) (ros.File, error) {
	const known = ros.O_RDONLY | ros.O_WRONLY | ros.O_RDWR | ros.O_APPEND | ros.O_CREATE | ros.O_TRUNC
	if flag&^known != 0 {
		return nil, errUnsupported("opening with O_EXCL or O_SYNC")
	}
	write := flag&(ros.O_WRONLY|ros.O_RDWR) != 0
	req := &ipc.OpenReq{
		Path:   name,
		Write:  write,
		Create: flag&ros.O_CREATE != 0,
		Append: flag&ros.O_APPEND != 0,
		Follow: true,
	}
	if flag&ros.O_TRUNC != 0 && write {
		if !req.Create {
			// Truncation must not create: only truncate what exists.
			if _, err := o.Stat(name); err != nil {
				return nil, err
			}
		}
		if _, err := writeFile(o.c, name, nil, false, uint32(perm.Perm())); err != nil {
			return nil, err
		}
	}
	return openFile(o.c, req)
}

// Mkdir creates one directory through the broker.
func (o *OS) Mkdir(name string, perm ros.FileMode) error {
	return callNoFD(o.c, ipc.OpMkdir, &ipc.MkdirReq{Path: name, Mode: uint32(perm.Perm())}, nil)
}

// MkdirAll creates a directory and its missing parents through the broker.
func (o *OS) MkdirAll(name string, perm ros.FileMode) error {
	return callNoFD(o.c, ipc.OpMkdir, &ipc.MkdirReq{Path: name, Parents: true, Mode: uint32(perm.Perm())}, nil)
}

// Remove deletes one object through the broker.
func (o *OS) Remove(name string) error {
	return callNoFD(o.c, ipc.OpRemove, &ipc.RemoveReq{Path: name}, nil)
}

// RemoveAll deletes a tree through the broker; like Go, a missing path is
// not an error.
func (o *OS) RemoveAll(name string) error {
	return callNoFD(o.c, ipc.OpRemove, &ipc.RemoveReq{Path: name, Recursive: true, Force: true}, nil)
}

// Rename moves an object through the broker, like fs.mv: move on the
// source, create on the destination (and delete on a replaced one).
func (o *OS) Rename(oldpath, newpath string) error {
	return callNoFD(o.c, ipc.OpMove, &ipc.MoveReq{Src: oldpath, Dst: newpath}, nil)
}

// Symlink makes newname a symlink to oldname through the broker, like
// fs.symlink without force.
func (o *OS) Symlink(oldname, newname string) error {
	return callNoFD(o.c, ipc.OpSymlink, &ipc.SymlinkReq{Target: oldname, Link: newname}, nil)
}

// WalkDir walks a tree with one broker listing per directory, in lexical
// order, with fs.WalkDir's SkipDir and SkipAll semantics.
func (o *OS) WalkDir(root string, fn ros.WalkDirFunc) error {
	info, err := o.Stat(root)
	if err != nil {
		err = fn(root, nil, err)
	} else {
		err = o.walk(root, dirEntry{info.(fileInfo)}, fn)
	}
	if err == fs.SkipDir || err == fs.SkipAll {
		return nil
	}
	return err
}

func (o *OS) walk(p string, d dirEntry, fn ros.WalkDirFunc) error {
	if err := fn(p, d, nil); err != nil || !d.IsDir() {
		if err == fs.SkipDir && d.IsDir() {
			err = nil
		}
		return err
	}
	entries, err := o.ReadDir(p)
	if err != nil {
		err = fn(p, d, err)
		if err == fs.SkipDir && d.IsDir() {
			err = nil
		}
		return err
	}
	for _, e := range entries {
		if err := o.walk(path.Join(p, e.Name()), e.(dirEntry), fn); err != nil {
			if err == fs.SkipDir {
				break
			}
			return err
		}
	}
	return nil
}

// ---- process and environment --------------------------------------------

// Args is empty: script arguments arrive in the args map.
func (o *OS) Args() []string { return nil }

// Chdir is refused: the working directory of every script is "/".
func (o *OS) Chdir(dir string) error { return errUnsupported("chdir") }

// Environ is empty: the host environment is not the script's business.
func (o *OS) Environ() []string { return nil }

// Exit is never reached through a script: Globals replaces the os module's
// exit with one that raises ExitError, because an interface method cannot
// stop the VM. Anything else calling it is ignored on purpose.
func (o *OS) Exit(code int) {}

// Getenv is always empty (see Environ).
func (o *OS) Getenv(key string) string { return "" }

// LookupEnv finds nothing (see Environ).
func (o *OS) LookupEnv(key string) (string, bool) { return "", false }

// Setenv is refused (see Environ).
func (o *OS) Setenv(key, value string) error { return errUnsupported("setenv") }

// Unsetenv is refused (see Environ).
func (o *OS) Unsetenv(key string) error { return errUnsupported("unsetenv") }

// Getpid is the worker's pid inside its own pid namespace.
func (o *OS) Getpid() int { return os.Getpid() }

// Getuid is the worker's unprivileged uid inside its user namespace.
func (o *OS) Getuid() int { return os.Getuid() }

// Getwd is "/", against which relative paths are resolved by the broker.
func (o *OS) Getwd() (string, error) { return "/", nil }

// Hostname is refused: the worker's own uts namespace would answer with a
// name that is not the host's, which would mislead a script.
func (o *OS) Hostname() (string, error) { return "", errUnsupported("hostname") }

// MkdirTemp is refused: there is no scratch space in the worker.
func (o *OS) MkdirTemp(dir, pattern string) (string, error) { return "", errUnsupported("mkdir_temp") }

// TempDir names the conventional directory; using it goes through the broker.
func (o *OS) TempDir() string { return "/tmp" }

// UserCacheDir is refused: the script has no home in the sandbox.
func (o *OS) UserCacheDir() (string, error) { return "", errUnsupported("user_cache_dir") }

// UserConfigDir is refused: the script has no home in the sandbox.
func (o *OS) UserConfigDir() (string, error) { return "", errUnsupported("user_config_dir") }

// UserHomeDir is refused: the script has no home in the sandbox.
func (o *OS) UserHomeDir() (string, error) { return "", errUnsupported("user_home_dir") }

// Stdin is a file whose reads fail: scripts get input through args only.
func (o *OS) Stdin() ros.File { return stdinFile{} }

// Stdout writes into the run's captured stdout, never the worker's.
func (o *OS) Stdout() ros.File { return stdoutFile{o.out} }

// PathSeparator is '/'.
func (o *OS) PathSeparator() rune { return '/' }

// PathListSeparator is ':'.
func (o *OS) PathListSeparator() rune { return ':' }

// CurrentUser is refused: the sandbox user means nothing to a script.
func (o *OS) CurrentUser() (ros.User, error) { return nil, errUnsupported("current_user") }

// LookupUser is refused: there is no user database in the sandbox.
func (o *OS) LookupUser(name string) (ros.User, error) { return nil, errUnsupported("lookup_user") }

// LookupUid is refused: there is no user database in the sandbox.
func (o *OS) LookupUid(uid string) (ros.User, error) { return nil, errUnsupported("lookup_uid") }

// LookupGroup is refused: there is no group database in the sandbox.
func (o *OS) LookupGroup(name string) (ros.Group, error) {
	return nil, errUnsupported("lookup_group")
}

// LookupGid is refused: there is no group database in the sandbox.
func (o *OS) LookupGid(gid string) (ros.Group, error) { return nil, errUnsupported("lookup_gid") }

// ---- helper types ----------------------------------------------------------

// fileInfo adapts the broker's FileInfo to fs.FileInfo.
type fileInfo struct{ fi ipc.FileInfo }

func (f fileInfo) Name() string { return f.fi.Name }
func (f fileInfo) Size() int64  { return f.fi.Size }
func (f fileInfo) IsDir() bool  { return f.fi.Kind == "dir" }
func (f fileInfo) Sys() any     { return f.fi }

func (f fileInfo) Mode() fs.FileMode {
	m := fs.FileMode(f.fi.Mode & 0o777)
	if f.fi.Mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if f.fi.Mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if f.fi.Mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	switch f.fi.Kind {
	case "dir":
		m |= fs.ModeDir
	case "symlink":
		m |= fs.ModeSymlink
	case "fifo":
		m |= fs.ModeNamedPipe
	case "socket":
		m |= fs.ModeSocket
	case "device":
		m |= fs.ModeDevice
	}
	return m
}

func (f fileInfo) ModTime() time.Time {
	t, err := time.Parse(time.RFC3339Nano, f.fi.MTime)
	if err != nil {
		return time.Time{}
	}
	return t
}

// dirEntry adapts a listed FileInfo to Risor's DirEntry.
type dirEntry struct{ info fileInfo }

func (d dirEntry) Name() string               { return d.info.Name() }
func (d dirEntry) IsDir() bool                { return d.info.IsDir() }
func (d dirEntry) Type() fs.FileMode          { return d.info.Mode().Type() }
func (d dirEntry) Info() (fs.FileInfo, error) { return d.info, nil }
func (d dirEntry) HasInfo() bool              { return true }

// stdoutFile is the script's stdout: writes go to the Output.
type stdoutFile struct{ out *Output }

func (s stdoutFile) Read(p []byte) (int, error)  { return 0, errors.New("read from stdout") }
func (s stdoutFile) Write(p []byte) (int, error) { return s.out.Write(p) }
func (s stdoutFile) Close() error                { return nil }
func (s stdoutFile) Stat() (fs.FileInfo, error) {
	return nil, errUnsupported("stat of stdout")
}

// stdinFile is the script's stdin: there is none.
type stdinFile struct{}

func (stdinFile) Read(p []byte) (int, error)  { return 0, errUnsupported("reading stdin") }
func (stdinFile) Write(p []byte) (int, error) { return 0, errUnsupported("writing stdin") }
func (stdinFile) Close() error                { return nil }
func (stdinFile) Stat() (fs.FileInfo, error)  { return nil, errUnsupported("stat of stdin") }
