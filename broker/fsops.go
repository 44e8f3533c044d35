package broker

import (
	"os"
	"path"
	"strings"
	"time"

	"github.com/rex-sh/rex/authz"
	"github.com/rex-sh/rex/broker/host"
	"github.com/rex-sh/rex/ipc"
)

// File operations. Each handler follows one order, so that what a script
// learns never depends on whether a forbidden object exists:
//
//  1. canonicalise the path (reject "..", fold "//" and "/./") before any
//     entity is built;
//  2. look the object up without side effects (O_PATH, no symlinks);
//  3. authorise, with the object's fstat attributes when it exists;
//  4. only then report a lookup error, or operate on the looked-up object.

// Default per-run caps of file operations.
const (
	maxReadBytes = 64 << 20 // largest body fs.cat/read_bytes return
	maxListItems = 100000   // entries in one directory listing
)

func init() {
	handlers[ipc.OpStat] = (*session).opStat
	handlers[ipc.OpExists] = (*session).opExists
	handlers[ipc.OpRead] = (*session).opRead
	handlers[ipc.OpOpen] = (*session).opOpen
	handlers[ipc.OpList] = (*session).opList
	handlers[ipc.OpWrite] = (*session).opWrite
	handlers[ipc.OpMkdir] = (*session).opMkdir
	handlers[ipc.OpRemove] = (*session).opRemove
}

var (
	actOpen   = authz.FileAction("open")
	actRead   = authz.FileAction("read")
	actWrite  = authz.FileAction("write")
	actCreate = authz.FileAction("create")
	actDelete = authz.FileAction("delete")
	actStat   = authz.FileAction("stat")
)

// target is one canonical path and, when it exists, its open handle.
type target struct {
	path string
	obj  *host.Object
	err  error // lookup error, reported only after authorisation
	// attrs are the object's attributes as resource gave them to Cedar,
	// once hasAttrs; the reply's FileInfo names the same owner and group
	// (see infoOf).
	attrs    authz.FileAttrs
	hasAttrs bool
}

func (t *target) close() {
	if t.obj != nil {
		t.obj.Close()
	}
}

// resource is the Cedar entity for the target: a Dir for directories, a
// File otherwise (including objects that do not exist yet).
func (t *target) resource() authz.Resource {
	if t.obj == nil {
		return authz.FileResource(t.path, nil)
	}
	info := t.obj.Info()
	if !t.hasAttrs {
		t.attrs, t.hasAttrs = *attrsOf(info), true
	}
	a := &t.attrs
	if info.Kind == host.KindDir {
		return authz.DirResource(t.path, a)
	}
	return authz.FileResource(t.path, a)
}

func attrsOf(i host.Info) *authz.FileAttrs {
	return &authz.FileAttrs{
		Owner: host.UserName(i.UID), Group: host.GroupName(i.GID),
		UID: i.UID, GID: i.GID, Mode: i.Mode, Kind: string(i.Kind),
	}
}

func canonical(p string) (string, error) {
	c, err := authz.Canonical(p)
	if err != nil {
		return "", ipc.Errorf(ipc.CodeInvalid, "invalid path %q: %v", p, err)
	}
	return c, nil
}

// lookup canonicalises p and looks it up without following symlinks.
func (s *session) lookup(p string, follow bool) (*target, error) {
	return s.find(p, follow, s.run.fs.Lookup)
}

// describe is lookup for stat and exists, which only read the object's
// Info: see host.FS.Describe.
func (s *session) describe(p string, follow bool) (*target, error) {
	return s.find(p, follow, s.run.fs.Describe)
}

func (s *session) find(p string, follow bool, find func(string, bool) (*host.Object, error)) (*target, error) {
	c, err := canonical(p)
	if err != nil {
		return nil, err
	}
	obj, err := find(c, follow)
	t := &target{path: c, obj: obj, err: err}
	if obj != nil && follow {
		// Authorise what the symlinks resolved to, never the link text:
		// the resolved path has no symlink in it, so a symlinked
		// directory is authorised as the directory it leads to.
		t.path = obj.Path()
	}
	return t, nil
}

// parentDir looks up the directory holding t, for Rex's "open on the Dir".
func (s *session) authorizeParentOpen(t *target) error {
	if t.path == "/" {
		return nil
	}
	dir := path.Dir(t.path)
	var attrs *authz.FileAttrs
	if t.obj != nil {
		// The directory the object was found in, by its descriptor.
		if pi, ok := t.obj.ParentInfo(); ok {
			attrs = attrsOf(pi)
		}
	}
	if attrs == nil {
		if obj, err := s.run.fs.Lookup(dir, false); err == nil {
			attrs = attrsOf(obj.Info())
			obj.Close()
		}
	}
	return s.checkFile(actOpen, authz.DirResource(dir, attrs), nil)
}

// hostErr turns a host error into the script-facing error.
func hostErr(err error) error {
	if err == nil {
		return nil
	}
	return host.WireError(err)
}

func (s *session) opStat(body []byte) (any, *os.File, error) {
	t, err := s.statTarget(body)
	if err != nil {
		return nil, nil, err
	}
	s.later(t)
	if t.err != nil {
		return nil, nil, hostErr(t.err)
	}
	return s.fileInfo(t), nil, nil
}

func (s *session) opExists(body []byte) (any, *os.File, error) {
	t, err := s.statTarget(body)
	if err != nil {
		return nil, nil, err
	}
	s.later(t)
	if t.err != nil {
		if host.Code(t.err) == ipc.CodeNotFound {
			return &ipc.ExistsResp{Exists: false}, nil, nil
		}
		return nil, nil, hostErr(t.err)
	}
	return &ipc.ExistsResp{Exists: true}, nil, nil
}

// statTarget is the start of stat and exists: decode, look up, and
// authorise stat on what was found (or would be there), before either says
// anything about it. The caller closes the target.
func (s *session) statTarget(body []byte) (*target, error) {
	var req ipc.PathReq
	if err := ipc.Unmarshal(body, &req); err != nil {
		return nil, badRequest(err)
	}
	t, err := s.describe(req.Path, req.Follow)
	if err != nil {
		return nil, err
	}
	if err := s.checkFile(actStat, t.resource(), nil); err != nil {
		t.close()
		return nil, err
	}
	return t, nil
}

// opRead is Rex's three-permit read: open on the parent Dir, open on the
// File, read on the File. Small bodies travel inline; larger ones as a
// read-only descriptor on the very object that was authorised.
func (s *session) opRead(body []byte) (any, *os.File, error) {
	var req ipc.ReadReq
	if err := ipc.Unmarshal(body, &req); err != nil {
		return nil, nil, badRequest(err)
	}
	t, err := s.find(req.Path, req.Follow, s.run.fs.LookupToRead)
	if err != nil {
		return nil, nil, err
	}
	defer t.close()
	res := t.resource()
	if err := s.authorizeParentOpen(t); err != nil {
		return nil, nil, err
	}
	if err := s.checkFile(actOpen, res, nil); err != nil {
		return nil, nil, err
	}
	redact, err := s.readPermit(res)
	if err != nil {
		return nil, nil, err
	}
	if t.err != nil {
		return nil, nil, hostErr(t.err)
	}
	info := t.obj.Info()
	if redact {
		resp, err := s.redactedRead(t)
		return resp, nil, err
	}
	if info.Kind == host.KindDir {
		return nil, nil, ipc.Errorf(ipc.CodeIsDir, "%s is a directory", t.path)
	}
	if info.Kind != host.KindFile {
		return nil, nil, ipc.Errorf(ipc.CodeUnsupported, "%s is a %s, not a regular file", t.path, info.Kind)
	}
	if info.Size > maxReadBytes {
		return nil, nil, ipc.Errorf(ipc.CodeLimit, "%s is %d bytes, over the %d-byte read cap: use fs.open and read it in parts", t.path, info.Size, maxReadBytes)
	}
	if info.Size <= ipc.MaxInline {
		data, err := t.obj.ReadAll(ipc.MaxInline)
		if err == nil {
			return &ipc.ReadResp{Data: data, Size: int64(len(data))}, nil, nil
		}
		if host.Code(err) != ipc.CodeLimit { // grew since fstat: fall back to a descriptor
			return nil, nil, hostErr(err)
		}
	}
	f, err := t.obj.OpenRead()
	if err != nil {
		return nil, nil, hostErr(err)
	}
	return &ipc.ReadResp{Size: info.Size, FD: true}, f, nil
}

// opOpen returns a descriptor with exactly the granted mode: read-only
// needs Rex's three permits; write needs open on the Dir and File and
// write on the File (plus create when the file is made).
func (s *session) opOpen(body []byte) (any, *os.File, error) {
	var req ipc.OpenReq
	if err := ipc.Unmarshal(body, &req); err != nil {
		return nil, nil, badRequest(err)
	}
	t, err := s.lookup(req.Path, req.Follow)
	if err != nil {
		return nil, nil, err
	}
	defer t.close()
	writing := req.Write || req.Append || req.Create
	missing := t.err != nil && host.Code(t.err) == ipc.CodeNotFound
	res := t.resource()
	if err := s.authorizeParentOpen(t); err != nil {
		return nil, nil, err
	}
	act := actRead
	if writing {
		act = actWrite
	}
	if req.Create {
		if err := s.checkMaybeCreate(res, missing, actOpen, act); err != nil {
			return nil, nil, err
		}
	} else {
		for _, a := range []authz.Action{actOpen, act} {
			if err := s.checkFile(a, res, nil); err != nil {
				return nil, nil, err
			}
		}
	}
	if missing && req.Create {
		if _, err := s.run.fs.WriteFile(t.path, nil, true, 0o644); err != nil {
			return nil, nil, hostErr(err)
		}
		t.close()
		if t, err = s.lookup(t.path, false); err != nil {
			return nil, nil, err
		}
		defer t.close()
	}
	if t.err != nil {
		return nil, nil, hostErr(t.err)
	}
	if writing {
		if err := inPlace(t); err != nil {
			return nil, nil, err
		}
	}
	var f *os.File
	if writing {
		f, err = t.obj.OpenWrite(req.Append)
	} else {
		f, err = t.obj.OpenRead()
	}
	if err != nil {
		return nil, nil, hostErr(err)
	}
	return s.fileInfo(t), f, nil
}

// opList needs open and read on the Dir; entries the principal may not
// stat are left out, as Rex does.
func (s *session) opList(body []byte) (any, *os.File, error) {
	var req ipc.ListReq
	if err := ipc.Unmarshal(body, &req); err != nil {
		return nil, nil, badRequest(err)
	}
	c, err := canonical(req.Path)
	if err != nil {
		return nil, nil, err
	}
	obj, lerr := s.run.fs.Lookup(c, false)
	var attrs *authz.FileAttrs
	if lerr == nil {
		defer obj.Close()
		attrs = attrsOf(obj.Info())
	}
	dir := authz.DirResource(c, attrs)
	if err := s.checkFile(actOpen, dir, nil); err != nil {
		return nil, nil, err
	}
	if err := s.checkFile(actRead, dir, nil); err != nil {
		return nil, nil, err
	}
	if lerr != nil {
		return nil, nil, hostErr(lerr)
	}
	entries, err := obj.ReadDir()
	if err != nil {
		return nil, nil, hostErr(err)
	}
	if len(entries) > maxListItems {
		return nil, nil, ipc.Errorf(ipc.CodeLimit, "%s has more than %d entries", c, maxListItems)
	}
	out := &ipc.ListResp{Entries: []ipc.FileInfo{}}
	for _, e := range entries {
		if !req.All && strings.HasPrefix(e.Name, ".") {
			continue
		}
		p := path.Join(c, e.Name)
		a := attrsOf(e.Info)
		var r authz.Resource
		if e.Info.Kind == host.KindDir {
			r = authz.DirResource(p, a)
		} else {
			r = authz.FileResource(p, a)
		}
		if s.visible(actStat, r) {
			out.Entries = append(out.Entries, infoOf(p, e.Info, a, e.Target))
		}
	}
	return out, nil, nil
}

// authorizeQuiet decides whether a listing may show an entry: audited like
// every decision, but a refusal only hides the entry, so it is not a
// denial of the run.
func (s *session) authorizeQuiet(a authz.Action, r authz.Resource) bool {
	d := s.run.decide(a, r, nil)
	s.auditQuiet(a, r, d)
	return d.Allow
}

// opWrite replaces a file atomically (temp file in the same directory,
// then rename, keeping mode and owner) or appends. A new file needs
// create and write; an existing one write.
func (s *session) opWrite(body []byte) (any, *os.File, error) {
	var req ipc.WriteReq
	if err := ipc.Unmarshal(body, &req); err != nil {
		return nil, nil, badRequest(err)
	}
	t, err := s.lookup(req.Path, false)
	if err != nil {
		return nil, nil, err
	}
	defer t.close()
	res := t.resource()
	missing := t.err != nil && host.Code(t.err) == ipc.CodeNotFound
	if err := s.checkMaybeCreate(res, missing, actWrite); err != nil {
		return nil, nil, err
	}
	if t.err != nil && !missing {
		return nil, nil, hostErr(t.err)
	}
	if !missing && t.obj.Info().Kind != host.KindFile {
		return nil, nil, ipc.Errorf(ipc.CodeUnsupported, "%s is a %s, not a regular file", t.path, t.obj.Info().Kind)
	}
	if req.Append {
		if err := inPlace(t); err != nil {
			return nil, nil, err
		}
	}
	if err := s.run.chargeWrite(int64(len(req.Data))); err != nil {
		return nil, nil, err
	}
	mode := createMode(req.Mode, 0o644)
	n, err := s.run.fs.WriteFile(t.path, req.Data, req.Append, mode)
	if err != nil {
		return nil, nil, hostErr(err)
	}
	return &ipc.WriteResp{N: n}, nil, nil
}

// opMkdir needs create on each Dir it makes.
func (s *session) opMkdir(body []byte) (any, *os.File, error) {
	var req ipc.MkdirReq
	if err := ipc.Unmarshal(body, &req); err != nil {
		return nil, nil, badRequest(err)
	}
	c, err := canonical(req.Path)
	if err != nil {
		return nil, nil, err
	}
	mode := createMode(req.Mode, 0o755)
	todo := []string{c}
	if req.Parents {
		todo = nil
		for p := c; ; p = path.Dir(p) {
			obj, err := s.run.fs.Lookup(p, false)
			if err == nil {
				isDir := obj.Info().Kind == host.KindDir
				obj.Close()
				if !isDir {
					return nil, nil, ipc.Errorf(ipc.CodeNotDir, "%s exists and is not a directory", p)
				}
				break
			}
			todo = append([]string{p}, todo...)
			if p == "/" {
				break
			}
		}
	}
	for _, d := range todo {
		if err := s.checkFile(actCreate, authz.DirResource(d, nil), nil); err != nil {
			return nil, nil, err
		}
		if err := s.run.fs.Mkdir(d, mode); err != nil {
			return nil, nil, hostErr(err)
		}
	}
	return nil, nil, nil
}

// opRemove needs delete on the object; a tree is removed by descriptors,
// never following symlinks, on its own device only.
func (s *session) opRemove(body []byte) (any, *os.File, error) {
	var req ipc.RemoveReq
	if err := ipc.Unmarshal(body, &req); err != nil {
		return nil, nil, badRequest(err)
	}
	t, err := s.lookup(req.Path, false)
	if err != nil {
		return nil, nil, err
	}
	defer t.close()
	if err := s.checkFile(actDelete, t.resource(), nil); err != nil {
		return nil, nil, err
	}
	if t.err != nil {
		if req.Force && host.Code(t.err) == ipc.CodeNotFound {
			return nil, nil, nil
		}
		return nil, nil, hostErr(t.err)
	}
	if t.path == "/" {
		return nil, nil, ipc.Errorf(ipc.CodeInvalid, "refusing to remove /")
	}
	if err := s.run.fs.Remove(t.path, req.Recursive); err != nil {
		return nil, nil, hostErr(err)
	}
	return nil, nil, nil
}

// fileInfo is t's FileInfo for the reply, in the session's own (see
// session.info).
func (s *session) fileInfo(t *target) *ipc.FileInfo {
	var target string
	info := t.obj.Info()
	if info.Kind == host.KindSymlink {
		target, _ = t.obj.Readlink()
	}
	var a *authz.FileAttrs
	if t.hasAttrs {
		a = &t.attrs
	}
	s.info = infoOf(t.path, info, a, target)
	return &s.info
}

// infoOf is the FileInfo of the object at p. a, when not nil, is what its
// authorisation saw: its owner and group names are reused, so that the
// reply names the owner the decision was made on, and a stat looks each
// name up once, not twice (each lookup takes a lock and reads the clock).
func infoOf(p string, i host.Info, a *authz.FileAttrs, target string) ipc.FileInfo {
	var owner, group string
	if a != nil {
		owner, group = a.Owner, a.Group
	} else {
		owner, group = host.UserName(i.UID), host.GroupName(i.GID)
	}
	return ipc.FileInfo{
		Name: path.Base(p), Path: p, Kind: string(i.Kind), Size: i.Size, Mode: i.Mode,
		UID: i.UID, GID: i.GID, Owner: owner, Group: group,
		MTime: i.MTime.UTC().Format(time.RFC3339), Nlink: i.Nlink, Target: target,
	}
}

// createMode is the mode of an object a script creates: its permission
// bits less the umask 022, as for a process of the principal, so that a
// script cannot leave group- or world-writable files behind the root
// broker's back (fs.chmod, a Cedar-checked action, can still set them).
func createMode(asked, def uint32) uint32 {
	m := asked & 0o777
	if m == 0 {
		m = def
	}
	return m &^ 0o022
}

func badRequest(err error) error {
	return ipc.Errorf(ipc.CodeInvalid, "malformed request: %v", err)
}
