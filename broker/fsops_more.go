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

// File operations 9–18 (except execute, in exec.go). They keep the order
// of fsops.go: canonicalise, look up without side effects, authorise, then
// report the lookup error or operate on the looked-up object.

// Caps of tree walks (fs.find, fs.du).
const (
	maxWalkEntries = 100000
	maxWalkDepth   = 64
	// walkPageBytes bounds one page of a walk reply well inside MaxPacket.
	walkPageBytes = ipc.MaxPacket - 16<<10
	maxXattrValue = 64 << 10
)

func init() {
	handlers[ipc.OpChmod] = (*session).opChmod
	handlers[ipc.OpChown] = (*session).opChown
	handlers[ipc.OpMove] = (*session).opMove
	handlers[ipc.OpCopy] = (*session).opCopy
	handlers[ipc.OpTouch] = (*session).opTouch
	handlers[ipc.OpReadlink] = (*session).opReadlink
	handlers[ipc.OpSymlink] = (*session).opSymlink
	handlers[ipc.OpSetXattr] = (*session).opSetXattr
	handlers[ipc.OpWalk] = (*session).opWalk
}

var (
	actChmod    = authz.FileAction("chmod")
	actChown    = authz.FileAction("chown")
	actMove     = authz.FileAction("move")
	actSetXattr = authz.FileAction("set_x_attr")
)

// inPlace refuses to change a file's inode (append, open for writing,
// chmod, chown, xattrs) when it has more than one hard link: the other
// names may be outside the policy's grant (SECURITY-TESTS F07: a link to a
// root-owned file). A replacing write is not affected: it puts a new inode
// under the name and leaves the other links alone.
func inPlace(t *target) error {
	if t.obj == nil {
		return nil
	}
	if i := t.obj.Info(); i.Kind == host.KindFile && i.Nlink > 1 {
		return ipc.Errorf(ipc.CodeUnsupported, "%s has %d hard links: rex does not modify a file in place through one of several names (replace it with fs.write instead)", t.path, i.Nlink)
	}
	return nil
}

// dest is a name to create or replace: its canonical path, the looked-up
// parent directory, and the existing entry if any (never followed).
type dest struct {
	path string
	dir  *host.Object
	name string
	cur  *host.Object // existing entry, nil when free
	err  error        // lookup error of the parent, reported after authorisation
}

func (d *dest) close() {
	if d.dir != nil {
		d.dir.Close()
	}
	if d.cur != nil {
		d.cur.Close()
	}
}

func (s *session) lookupDest(p string) (*dest, error) {
	c, err := canonical(p)
	if err != nil {
		return nil, err
	}
	d := &dest{path: c}
	if c == "/" {
		d.err = ipc.Errorf(ipc.CodeInvalid, "/ cannot be created or replaced")
		return d, nil
	}
	d.dir, d.name, d.err = s.run.fs.LookupParent(c)
	if d.err == nil {
		if cur, err := d.dir.Child(d.name); err == nil {
			d.cur = cur
		} else if host.Code(err) != ipc.CodeNotFound {
			d.err = err
		}
	}
	return d, nil
}

// lookupPair looks up the source of a move or copy (never followed) and
// its destination; on an error nothing is left open.
func (s *session) lookupPair(srcPath, dstPath string) (*target, *dest, error) {
	src, err := s.lookup(srcPath, false)
	if err != nil {
		return nil, nil, err
	}
	dst, err := s.lookupDest(dstPath)
	if err != nil {
		src.close()
		return nil, nil, err
	}
	return src, dst, nil
}

// resource is the destination's entity; kind says what will be there when
// it does not exist yet.
func (d *dest) resource(dir bool) authz.Resource {
	if d.cur != nil {
		t := target{path: d.path, obj: d.cur}
		return t.resource()
	}
	if dir {
		return authz.DirResource(d.path, nil)
	}
	return authz.FileResource(d.path, nil)
}

func (d *dest) existing() *host.Info {
	if d.cur == nil {
		return nil
	}
	i := d.cur.Info()
	return &i
}

func (s *session) opChmod(body []byte) (any, *os.File, error) {
	var req ipc.ChmodReq
	if err := ipc.Unmarshal(body, &req); err != nil {
		return nil, nil, badRequest(err)
	}
	t, err := s.lookup(req.Path, req.Follow)
	if err != nil {
		return nil, nil, err
	}
	defer t.close()
	if err := s.checkFile(actChmod, t.resource(), nil); err != nil {
		return nil, nil, err
	}
	if t.err != nil {
		return nil, nil, hostErr(t.err)
	}
	if err := inPlace(t); err != nil {
		return nil, nil, err
	}
	return nil, nil, hostErr(t.obj.Chmod(req.Mode & 0o7777))
}

func (s *session) opChown(body []byte) (any, *os.File, error) {
	var req ipc.ChownReq
	if err := ipc.Unmarshal(body, &req); err != nil {
		return nil, nil, badRequest(err)
	}
	uid, gid := -1, -1
	if req.User != "" {
		id, ok := host.UserID(req.User)
		if !ok {
			return nil, nil, ipc.Errorf(ipc.CodeInvalid, "unknown user %q", req.User)
		}
		uid = int(id)
	}
	if req.Group != "" {
		id, ok := host.GroupID(req.Group)
		if !ok {
			return nil, nil, ipc.Errorf(ipc.CodeInvalid, "unknown group %q", req.Group)
		}
		gid = int(id)
	}
	t, err := s.lookup(req.Path, req.Follow)
	if err != nil {
		return nil, nil, err
	}
	defer t.close()
	if err := s.checkFile(actChown, t.resource(), nil); err != nil {
		return nil, nil, err
	}
	if t.err != nil {
		return nil, nil, hostErr(t.err)
	}
	if err := inPlace(t); err != nil {
		return nil, nil, err
	}
	return nil, nil, hostErr(t.obj.Chown(uid, gid))
}

// opMove is Rex's move: `move` on the source with the destination in the
// context, `create` on the destination, and `delete` on an existing
// destination that the move replaces. Nothing is followed.
func (s *session) opMove(body []byte) (any, *os.File, error) {
	var req ipc.MoveReq
	if err := ipc.Unmarshal(body, &req); err != nil {
		return nil, nil, badRequest(err)
	}
	src, dst, err := s.lookupPair(req.Src, req.Dst)
	if err != nil {
		return nil, nil, err
	}
	defer src.close()
	defer dst.close()
	ctx := map[string]any{"destination": map[string]any{
		"path": dst.path, "name": path.Base(dst.path), "parent_path": path.Dir(dst.path),
	}}
	if err := s.checkFile(actMove, src.resource(), ctx); err != nil {
		return nil, nil, err
	}
	isDir := src.obj != nil && src.obj.Info().Kind == host.KindDir
	if err := s.checkFile(actCreate, dst.resource(isDir), nil); err != nil {
		return nil, nil, err
	}
	if dst.cur != nil {
		if err := s.checkFile(actDelete, dst.resource(isDir), nil); err != nil {
			return nil, nil, err
		}
	}
	if src.err != nil {
		return nil, nil, hostErr(src.err)
	}
	if dst.err != nil {
		return nil, nil, hostErr(dst.err)
	}
	if src.path == "/" {
		return nil, nil, ipc.Errorf(ipc.CodeInvalid, "refusing to move /")
	}
	if dst.path == src.path || strings.HasPrefix(dst.path, src.path+"/") {
		return nil, nil, ipc.Errorf(ipc.CodeInvalid, "cannot move %s into itself", src.path)
	}
	return nil, nil, hostErr(src.obj.RenameTo(dst.dir, dst.name, dst.existing()))
}

// opCopy reads the source with Rex's three read permits and writes the
// destination like fs.write (create and write, or write on an existing
// file with force). The copy is a new inode, written atomically.
func (s *session) opCopy(body []byte) (any, *os.File, error) {
	var req ipc.CopyReq
	if err := ipc.Unmarshal(body, &req); err != nil {
		return nil, nil, badRequest(err)
	}
	src, dst, err := s.lookupPair(req.Src, req.Dst)
	if err != nil {
		return nil, nil, err
	}
	defer src.close()
	defer dst.close()
	res := src.resource()
	if err := s.authorizeParentOpen(src); err != nil {
		return nil, nil, err
	}
	for _, a := range []authz.Action{actOpen, actRead} {
		if err := s.checkFile(a, res, nil); err != nil {
			return nil, nil, err
		}
	}
	dres := dst.resource(false)
	if err := s.checkMaybeCreate(dres, dst.cur == nil, actWrite); err != nil {
		return nil, nil, err
	}
	if src.err != nil {
		return nil, nil, hostErr(src.err)
	}
	if dst.err != nil {
		return nil, nil, hostErr(dst.err)
	}
	if dst.cur != nil && !req.Force {
		return nil, nil, ipc.Errorf(ipc.CodeExists, "%s exists (use {force: true} to replace it)", dst.path)
	}
	info := src.obj.Info()
	if info.Kind != host.KindFile {
		return nil, nil, ipc.Errorf(ipc.CodeUnsupported, "%s is a %s: fs.cp copies regular files", src.path, info.Kind)
	}
	if info.Size > maxReadBytes {
		return nil, nil, ipc.Errorf(ipc.CodeLimit, "%s is %d bytes, over the %d-byte copy cap", src.path, info.Size, maxReadBytes)
	}
	data, err := src.obj.ReadAll(maxReadBytes)
	if err != nil {
		return nil, nil, hostErr(err)
	}
	if err := s.run.chargeWrite(int64(len(data))); err != nil {
		return nil, nil, err
	}
	opt := host.WriteOptions{Perm: info.Mode & 0o777, Existing: dst.existing()}
	if req.Preserve && opt.Existing != nil {
		// The replacing write keeps the old file's mode and owner; with
		// preserve, the source's win.
		e := *opt.Existing
		e.Mode = info.Mode & 0o777
		opt.Existing = &e
	}
	n, err := dst.dir.WriteFile(dst.name, data, opt)
	if err != nil {
		return nil, nil, hostErr(err)
	}
	if req.Preserve {
		if err := s.preserve(dst, info); err != nil {
			return nil, nil, err
		}
	}
	return &ipc.WriteResp{N: n}, nil, nil
}

// preserve gives the new copy the source's mtime and, when the broker may
// (it runs as root), its owner and group.
func (s *session) preserve(dst *dest, src host.Info) error {
	obj, err := dst.dir.Child(dst.name)
	if err != nil {
		return hostErr(err)
	}
	defer obj.Close()
	if os.Geteuid() == 0 {
		if err := obj.Chown(int(src.UID), int(src.GID)); err != nil {
			return hostErr(err)
		}
		if err := obj.Chmod(src.Mode); err != nil { // chown cleared set-id bits
			return hostErr(err)
		}
	}
	return hostErr(obj.SetTimes(src.MTime, src.MTime))
}

// opTouch creates an empty file (create and write) or sets an existing
// object's times to now (write; for a directory, its own write).
func (s *session) opTouch(body []byte) (any, *os.File, error) {
	var req ipc.PathReq
	if err := ipc.Unmarshal(body, &req); err != nil {
		return nil, nil, badRequest(err)
	}
	dst, err := s.lookupDest(req.Path)
	if err != nil {
		return nil, nil, err
	}
	defer dst.close()
	res := dst.resource(false)
	if err := s.checkMaybeCreate(res, dst.cur == nil, actWrite); err != nil {
		return nil, nil, err
	}
	if dst.err != nil {
		return nil, nil, hostErr(dst.err)
	}
	if dst.cur == nil {
		_, err := dst.dir.WriteFile(dst.name, nil, host.WriteOptions{Perm: 0o644})
		return nil, nil, hostErr(err)
	}
	return nil, nil, hostErr(dst.cur.SetTimes(time.Time{}, time.Time{}))
}

// opReadlink needs read on the link itself, which is never followed.
func (s *session) opReadlink(body []byte) (any, *os.File, error) {
	var req ipc.PathReq
	if err := ipc.Unmarshal(body, &req); err != nil {
		return nil, nil, badRequest(err)
	}
	t, err := s.lookup(req.Path, false)
	if err != nil {
		return nil, nil, err
	}
	defer t.close()
	if err := s.checkFile(actRead, t.resource(), nil); err != nil {
		return nil, nil, err
	}
	if t.err != nil {
		return nil, nil, hostErr(t.err)
	}
	if t.obj.Info().Kind != host.KindSymlink {
		return nil, nil, ipc.Errorf(ipc.CodeInvalid, "%s is not a symlink", t.path)
	}
	target, err := t.obj.Readlink()
	if err != nil {
		return nil, nil, hostErr(err)
	}
	return &ipc.ReadlinkResp{Target: target}, nil, nil
}

// opSymlink needs create on the link (and delete on an entry that force
// replaces). The target is text: it is neither resolved nor authorised,
// because following the link later is authorised on what it resolves to.
func (s *session) opSymlink(body []byte) (any, *os.File, error) {
	var req ipc.SymlinkReq
	if err := ipc.Unmarshal(body, &req); err != nil {
		return nil, nil, badRequest(err)
	}
	if req.Target == "" || len(req.Target) >= 4096 || strings.IndexByte(req.Target, 0) >= 0 {
		return nil, nil, ipc.Errorf(ipc.CodeInvalid, "invalid symlink target")
	}
	dst, err := s.lookupDest(req.Link)
	if err != nil {
		return nil, nil, err
	}
	defer dst.close()
	res := dst.resource(false)
	if err := s.checkFile(actCreate, res, nil); err != nil {
		return nil, nil, err
	}
	if dst.cur != nil && req.Force {
		if err := s.checkFile(actDelete, res, nil); err != nil {
			return nil, nil, err
		}
	}
	if dst.err != nil {
		return nil, nil, hostErr(dst.err)
	}
	if dst.cur != nil && !req.Force {
		return nil, nil, ipc.Errorf(ipc.CodeExists, "%s exists (use {force: true} to replace it)", dst.path)
	}
	return nil, nil, hostErr(dst.dir.Symlink(req.Target, dst.name, dst.existing()))
}

// opSetXattr is set_x_attr with context.xattr.name.
func (s *session) opSetXattr(body []byte) (any, *os.File, error) {
	var req ipc.SetXattrReq
	if err := ipc.Unmarshal(body, &req); err != nil {
		return nil, nil, badRequest(err)
	}
	if req.Name == "" || len(req.Name) > 255 || strings.IndexByte(req.Name, 0) >= 0 || len(req.Value) > maxXattrValue {
		return nil, nil, ipc.Errorf(ipc.CodeInvalid, "invalid extended attribute name or value")
	}
	t, err := s.lookup(req.Path, false)
	if err != nil {
		return nil, nil, err
	}
	defer t.close()
	ctx := map[string]any{"xattr": map[string]any{"name": req.Name}}
	if err := s.checkFile(actSetXattr, t.resource(), ctx); err != nil {
		return nil, nil, err
	}
	if t.err != nil {
		return nil, nil, hostErr(t.err)
	}
	if err := inPlace(t); err != nil {
		return nil, nil, err
	}
	return nil, nil, hostErr(t.obj.SetXattr(req.Name, req.Value))
}

// opWalk lists a tree breadth first from descriptors (Object.Child), so
// the walk stays in the directory that was authorised. It needs open and
// read on the root Dir; entries the principal may not stat are left out,
// and a directory is entered only with open and read on it, as Rex's
// listings leave out what the policy hides. Symlinks are listed, never
// followed; other mounts are not entered.
func (s *session) opWalk(body []byte) (any, *os.File, error) {
	var req ipc.WalkReq
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
	root := authz.DirResource(c, attrs)
	for _, a := range []authz.Action{actOpen, actRead} {
		if err := s.checkFile(a, root, nil); err != nil {
			return nil, nil, err
		}
	}
	if lerr != nil {
		return nil, nil, hostErr(lerr)
	}
	if obj.Info().Kind != host.KindDir {
		return nil, nil, ipc.Errorf(ipc.CodeNotDir, "%s is not a directory", c)
	}
	depth := req.MaxDepth
	if depth <= 0 || depth > maxWalkDepth {
		depth = maxWalkDepth
	}
	resp := &ipc.WalkResp{Entries: []ipc.WalkEntry{}}
	mnt, err := obj.MountID()
	if err != nil {
		return nil, nil, hostErr(err)
	}
	w := walker{s: s, resp: resp, maxDepth: depth, skip: req.Skip, budget: walkPageBytes, dev: obj.Info().Dev, mnt: mnt}
	// The queue holds paths, not descriptors, so a wide tree cannot
	// exhaust the broker's descriptors; each directory is looked up again
	// (confined, no symlinks) and must be the inode that was authorised.
	queue := []walkDir{{path: c, ino: obj.Info().Ino, depth: 1}}
	for len(queue) > 0 && !w.stop {
		d := queue[0]
		queue = queue[1:]
		queue = append(queue, w.dir(d)...)
	}
	return resp, nil, nil
}

type walkDir struct {
	path  string
	ino   uint64
	depth int
}

type walker struct {
	s        *session
	resp     *ipc.WalkResp
	maxDepth int
	skip     int
	seen     int
	budget   int
	dev, mnt uint64
	stop     bool
}

// dir lists one directory of a walk and returns the subdirectories to
// enter.
func (w *walker) dir(d walkDir) []walkDir {
	obj, err := w.s.run.fs.Lookup(d.path, false)
	if err != nil {
		return nil // vanished or changed meanwhile: left out
	}
	defer obj.Close()
	if i := obj.Info(); i.Kind != host.KindDir || i.Ino != d.ino || i.Dev != w.dev {
		return nil
	}
	if m, err := obj.MountID(); err != nil || m != w.mnt {
		return nil // a mount point, maybe a bind mount of this file system
	}
	entries, err := obj.ReadDir()
	if err != nil {
		return nil
	}
	var next []walkDir
	for _, e := range entries {
		p := path.Join(d.path, e.Name)
		a := attrsOf(e.Info)
		isDir := e.Info.Kind == host.KindDir
		r := authz.FileResource(p, a)
		if isDir {
			r = authz.DirResource(p, a)
		}
		if !w.s.visible(actStat, r) {
			continue
		}
		if w.seen++; w.seen > maxWalkEntries {
			w.resp.Truncated, w.stop = true, true
			return nil
		}
		if w.seen > w.skip {
			w.budget -= len(p) + 32
			if w.budget < 0 {
				w.resp.More, w.stop = true, true
				return nil
			}
			w.resp.Entries = append(w.resp.Entries, ipc.WalkEntry{Path: p, Kind: string(e.Info.Kind), Size: e.Info.Size, Depth: d.depth})
		}
		if !isDir || e.Info.Dev != w.dev {
			continue
		}
		if d.depth >= w.maxDepth {
			if d.depth == maxWalkDepth {
				w.resp.Truncated = true
			}
			continue
		}
		if w.s.visible(actOpen, r) && w.s.visible(actRead, r) {
			next = append(next, walkDir{path: p, ino: e.Info.Ino, depth: d.depth + 1})
		}
	}
	return next
}
