package sdk

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"unsafe"

	"github.com/risor-io/risor/object"

	"github.com/rex-sh/rex/ipc"
)

const (
	// MaxRead caps what fs.cat, fs.read_bytes and os.read_file load into
	// memory from a descriptor. Bigger files are read piecewise via fs.open.
	MaxRead = 16 << 20
	// MaxWriteData caps the data of one fs.write: the request must fit one
	// packet, and the slack leaves room for the path and the encoding.
	MaxWriteData = ipc.MaxPacket - 8<<10
)

// fsModule is the `fs` module. Every function is one request to the broker,
// which authorises it; nothing here decides what is allowed.
type fsModule struct {
	c Caller
}

func newFSModule(c Caller) *object.Module {
	m := &fsModule{c: c}
	return object.NewBuiltinsModule("fs", map[string]object.Object{
		"cat":        object.NewBuiltin("cat", m.cat),
		"read_bytes": object.NewBuiltin("read_bytes", m.readBytes),
		"stat":       object.NewBuiltin("stat", m.stat),
		"exists":     object.NewBuiltin("exists", m.exists),
		"ls":         object.NewBuiltin("ls", m.ls),
		"write":      object.NewBuiltin("write", m.write),
		"mkdir":      object.NewBuiltin("mkdir", m.mkdir),
		"rm":         object.NewBuiltin("rm", m.rm),
		"open":       object.NewBuiltin("open", m.open),
		"mv":         object.NewBuiltin("mv", m.mv),
		"cp":         object.NewBuiltin("cp", m.cp),
		"touch":      object.NewBuiltin("touch", m.touch),
		"chmod":      object.NewBuiltin("chmod", m.chmod),
		"chown":      object.NewBuiltin("chown", m.chown),
		"readlink":   object.NewBuiltin("readlink", m.readlink),
		"symlink":    object.NewBuiltin("symlink", m.symlink),
		"setxattr":   object.NewBuiltin("setxattr", m.setxattr),
		"grep":       object.NewBuiltin("grep", m.grep),
		"head":       object.NewBuiltin("head", m.head),
		"tail":       object.NewBuiltin("tail", m.tail),
		"wc":         object.NewBuiltin("wc", m.wc),
		"sed":        object.NewBuiltin("sed", m.sed),
		"zcat":       object.NewBuiltin("zcat", m.zcat),
		"zgrep":      object.NewBuiltin("zgrep", m.zgrep),
		"gzip":       object.NewBuiltin("gzip", m.gzip),
		"du":         object.NewBuiltin("du", m.du),
		"find":       object.NewBuiltin("find", m.find),
		"execute":    object.NewBuiltin("execute", m.execute),
	})
}

// pathAndOptions reads the path argument and the allowed options of fn.
func pathAndOptions(fn string, args []object.Object, n int, allowed ...string) ([]object.Object, string, options, *object.Error) {
	pos, o, err := splitArgs(fn, args, n, allowed...)
	if err != nil {
		return nil, "", o, err
	}
	path, err := stringArg(fn, pos, 0, "path")
	if err != nil {
		return nil, "", o, err
	}
	return pos, path, o, nil
}

func (m *fsModule) cat(ctx context.Context, args ...object.Object) object.Object {
	_, path, o, oerr := pathAndOptions("fs.cat", args, 1, "number", "follow")
	if oerr != nil {
		return oerr
	}
	opt, oerr := o.bools("number", "follow")
	if oerr != nil {
		return oerr
	}
	data, err := readFile(m.c, path, opt[1])
	if err != nil {
		return raise(err)
	}
	if opt[0] {
		return object.NewString(numberLines(owned(data)))
	}
	return object.NewString(owned(data))
}

// owned is string(b) without the copy, for a b that readFile made for this
// call alone and that nothing writes to again: a read of a few KiB then
// costs one allocation in the worker, not two.
func owned(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// numberLines prefixes each line like `cat -n` does.
func numberLines(s string) string {
	if s == "" {
		return ""
	}
	lines := strings.SplitAfter(s, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	var b strings.Builder
	b.Grow(len(s) + 8*len(lines))
	for i, l := range lines {
		fmt.Fprintf(&b, "%6d\t%s", i+1, l)
	}
	return b.String()
}

func (m *fsModule) readBytes(ctx context.Context, args ...object.Object) object.Object {
	_, path, o, oerr := pathAndOptions("fs.read_bytes", args, 1, "follow")
	if oerr != nil {
		return oerr
	}
	follow, oerr := o.bool("follow")
	if oerr != nil {
		return oerr
	}
	data, err := readFile(m.c, path, follow)
	if err != nil {
		return raise(err)
	}
	return object.NewByteSlice(data)
}

// readFile fetches a whole file: inline when the broker sends the body, else
// by reading the passed read-only descriptor with read(2), never past
// MaxRead.
func readFile(c Caller, path string, follow bool) ([]byte, error) {
	var resp ipc.ReadResp
	f, err := c.Call(ipc.OpRead, &ipc.ReadReq{Path: path, Follow: follow}, &resp)
	if err != nil {
		return nil, err
	}
	if !resp.FD {
		if f != nil {
			f.Close()
			return nil, protocolError("broker sent a descriptor for an inline read of %s", path)
		}
		return resp.Data, nil
	}
	if f == nil {
		return nil, protocolError("broker announced a descriptor for %s and sent none", path)
	}
	defer f.Close()
	if resp.Size > MaxRead {
		return nil, tooLarge(path)
	}
	return readCapped(f, path, int(resp.Size))
}

func tooLarge(path string) *ipc.Error {
	return ipc.Errorf(ipc.CodeLimit, "file %s is larger than %d bytes: use fs.open and read it in pieces", path, MaxRead)
}

// readCapped reads r to its end, failing once more than MaxRead bytes came.
// The size hint from fstat only sizes the first buffer: the file may grow.
func readCapped(r io.Reader, path string, hint int) ([]byte, error) {
	buf := make([]byte, 0, min(max(hint, 512), MaxRead)+1)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if len(buf) > MaxRead {
			return nil, tooLarge(path)
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, ipc.Errorf(ipc.CodeIO, "read %s: %v", path, err)
		}
	}
}

func (m *fsModule) stat(ctx context.Context, args ...object.Object) object.Object {
	_, path, o, oerr := pathAndOptions("fs.stat", args, 1, "follow")
	if oerr != nil {
		return oerr
	}
	follow, oerr := o.bool("follow")
	if oerr != nil {
		return oerr
	}
	var fi ipc.FileInfo
	if err := callNoFD(m.c, ipc.OpStat, &ipc.PathReq{Path: path, Follow: follow}, &fi); err != nil {
		return raise(err)
	}
	return statMap(fi)
}

// statMap is the map scripts get from fs.stat and in fs.ls.
func statMap(fi ipc.FileInfo) *object.Map {
	// The values are copied into one allocation (copies of what the
	// constructors return, so Risor's own invariants hold): eleven separate
	// ones were 40 % of the map's cost, which a loop of fs.stat pays per call.
	v := new(statValues)
	m := map[string]object.Object{
		"name":  v.str(0, fi.Name),
		"path":  v.str(1, fi.Path),
		"kind":  v.str(2, fi.Kind),
		"size":  v.int(0, fi.Size),
		"mode":  v.int(1, int64(fi.Mode)),
		"uid":   v.int(2, int64(fi.UID)),
		"gid":   v.int(3, int64(fi.GID)),
		"owner": v.str(3, fi.Owner),
		"group": v.str(4, fi.Group),
		"mtime": v.str(5, fi.MTime),
		"nlink": v.int(4, int64(fi.Nlink)),
	}
	if fi.Kind == "symlink" {
		m["target"] = v.str(6, fi.Target)
	}
	return object.NewMap(m)
}

type statValues struct {
	s [7]object.String
	n [5]object.Int
}

func (v *statValues) str(i int, s string) *object.String {
	v.s[i] = *object.NewString(s)
	return &v.s[i]
}

func (v *statValues) int(i int, n int64) *object.Int {
	v.n[i] = *object.NewInt(n)
	return &v.n[i]
}

// callNoFD makes a call whose reply never carries a descriptor; a stray one
// is closed and reported.
func callNoFD(c Caller, op ipc.Op, req, resp any) error {
	f, err := c.Call(op, req, resp)
	if err != nil {
		return err
	}
	if f != nil {
		f.Close()
		return protocolError("broker sent a descriptor with a %v reply", op)
	}
	return nil
}

func (m *fsModule) exists(ctx context.Context, args ...object.Object) object.Object {
	_, path, o, oerr := pathAndOptions("fs.exists", args, 1, "follow")
	if oerr != nil {
		return oerr
	}
	follow, oerr := o.bool("follow")
	if oerr != nil {
		return oerr
	}
	var resp ipc.ExistsResp
	if err := callNoFD(m.c, ipc.OpExists, &ipc.PathReq{Path: path, Follow: follow}, &resp); err != nil {
		return raise(err)
	}
	return object.NewBool(resp.Exists)
}

func (m *fsModule) ls(ctx context.Context, args ...object.Object) object.Object {
	_, path, o, oerr := pathAndOptions("fs.ls", args, 1, "all")
	if oerr != nil {
		return oerr
	}
	all, oerr := o.bool("all")
	if oerr != nil {
		return oerr
	}
	entries, err := list(m.c, path, all)
	if err != nil {
		return raise(err)
	}
	out := make(map[string]object.Object, len(entries))
	for _, e := range entries {
		out[e.Name] = statMap(e)
	}
	return object.NewMap(out)
}

// list asks for a directory's entries. Hidden entries are dropped here too
// when all is false, so the script sees `ls` semantics whatever the broker
// chose to send.
func list(c Caller, path string, all bool) ([]ipc.FileInfo, error) {
	var resp ipc.ListResp
	if err := callNoFD(c, ipc.OpList, &ipc.ListReq{Path: path, All: all}, &resp); err != nil {
		return nil, err
	}
	if all {
		return resp.Entries, nil
	}
	out := resp.Entries[:0]
	for _, e := range resp.Entries {
		if !strings.HasPrefix(e.Name, ".") {
			out = append(out, e)
		}
	}
	return out, nil
}

func (m *fsModule) write(ctx context.Context, args ...object.Object) object.Object {
	pos, path, o, oerr := pathAndOptions("fs.write", args, 2, "append")
	if oerr != nil {
		return oerr
	}
	var data []byte
	switch d := pos[1].(type) {
	case *object.String:
		data = []byte(d.Value())
	case *object.ByteSlice:
		data = d.Value()
	default:
		return object.TypeErrorf("type error: fs.write() expected a string or byte_slice as data (%s given)", pos[1].Type())
	}
	appendTo, oerr := o.bool("append")
	if oerr != nil {
		return oerr
	}
	n, err := writeFile(m.c, path, data, appendTo, 0)
	if err != nil {
		return raise(err)
	}
	return object.NewInt(n)
}

// writeFile sends data in one request. Mode 0 lets the broker choose the
// mode of a file it creates.
func writeFile(c Caller, path string, data []byte, appendTo bool, mode uint32) (int64, error) {
	if len(data) > MaxWriteData {
		return 0, ipc.Errorf(ipc.CodeLimit,
			"data of %d bytes is too large for one write (at most %d): use fs.open(path, {write: true, create: true}) and write it in pieces",
			len(data), MaxWriteData)
	}
	var resp ipc.WriteResp
	if err := callNoFD(c, ipc.OpWrite, &ipc.WriteReq{Path: path, Data: data, Append: appendTo, Mode: mode}, &resp); err != nil {
		return 0, err
	}
	return resp.N, nil
}

func (m *fsModule) mkdir(ctx context.Context, args ...object.Object) object.Object {
	_, path, o, oerr := pathAndOptions("fs.mkdir", args, 1, "parents")
	if oerr != nil {
		return oerr
	}
	parents, oerr := o.bool("parents")
	if oerr != nil {
		return oerr
	}
	if err := callNoFD(m.c, ipc.OpMkdir, &ipc.MkdirReq{Path: path, Parents: parents}, nil); err != nil {
		return raise(err)
	}
	return object.Nil
}

func (m *fsModule) rm(ctx context.Context, args ...object.Object) object.Object {
	_, path, o, oerr := pathAndOptions("fs.rm", args, 1, "recursive", "force")
	if oerr != nil {
		return oerr
	}
	opt, oerr := o.bools("recursive", "force")
	if oerr != nil {
		return oerr
	}
	if err := callNoFD(m.c, ipc.OpRemove, &ipc.RemoveReq{Path: path, Recursive: opt[0], Force: opt[1]}, nil); err != nil {
		return raise(err)
	}
	return object.Nil
}

func (m *fsModule) open(ctx context.Context, args ...object.Object) object.Object {
	_, path, o, oerr := pathAndOptions("fs.open", args, 1, "write", "create", "append", "follow")
	if oerr != nil {
		return oerr
	}
	opt, oerr := o.bools("write", "create", "append", "follow")
	if oerr != nil {
		return oerr
	}
	req := &ipc.OpenReq{Path: path, Write: opt[0] || opt[2], Create: opt[1], Append: opt[2], Follow: opt[3]}
	f, err := openFile(m.c, req)
	if err != nil {
		return raise(err)
	}
	return object.NewFile(ctx, f, path)
}

// openFile asks the broker for a descriptor and wraps it.
func openFile(c Caller, req *ipc.OpenReq) (*fdFile, error) {
	var fi ipc.FileInfo
	f, err := c.Call(ipc.OpOpen, req, &fi)
	if err != nil {
		return nil, err
	}
	if f == nil {
		return nil, protocolError("broker granted open of %s without a descriptor", req.Path)
	}
	return &fdFile{f: f, info: fi, writable: req.Write}, nil
}

// fdFile is a file the broker opened and passed over. It touches the
// descriptor only with read, write, lseek and close: Stat answers from the
// broker's fstat, taken when the descriptor was granted, because fstat is
// not something the worker's seccomp profile needs to allow.
type fdFile struct {
	f        *os.File
	info     ipc.FileInfo
	writable bool
}

func (d *fdFile) Read(p []byte) (int, error) { return d.f.Read(p) }

func (d *fdFile) Write(p []byte) (int, error) {
	if !d.writable {
		return 0, fmt.Errorf("write %s: file was opened read-only (use {write: true})", d.info.Path)
	}
	return d.f.Write(p)
}

func (d *fdFile) Seek(offset int64, whence int) (int64, error) { return d.f.Seek(offset, whence) }

func (d *fdFile) Close() error { return d.f.Close() }

func (d *fdFile) Stat() (os.FileInfo, error) { return fileInfo{d.info}, nil }
