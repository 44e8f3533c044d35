package sdk

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"path"
	"regexp"
	"sort"
	"strings"

	"github.com/risor-io/risor/object"

	"github.com/rex-sh/rex/ipc"
)

// Decompression bounds of fs.zcat and fs.zgrep: output stops at MaxRead
// bytes, and at maxRatio times the compressed size plus ratioSlack, so
// that a bomb is refused after reading a small multiple of its input.
const (
	maxRatio   = 200
	ratioSlack = 1 << 20
)

// intOpt returns the integer option key, def when absent.
func intOpt(o options, key string, def int64) (int64, *object.Error) {
	v, ok := o.m[key]
	if !ok || v == object.Nil {
		return def, nil
	}
	i, ok := v.(*object.Int)
	if !ok {
		return 0, object.TypeErrorf("type error: %s() option %q must be an int (%s given)", o.fn, key, v.Type())
	}
	return i.Value(), nil
}

// twoPaths reads the two path arguments of mv, cp, symlink and gzip.
func twoPaths(fn string, args []object.Object, allowed ...string) (string, string, options, *object.Error) {
	pos, o, err := splitArgs(fn, args, 2, allowed...)
	if err != nil {
		return "", "", o, err
	}
	a, err := stringArg(fn, pos, 0, "path")
	if err != nil {
		return "", "", o, err
	}
	b, err := stringArg(fn, pos, 1, "path")
	if err != nil {
		return "", "", o, err
	}
	return a, b, o, nil
}

func nilOr(err error) object.Object {
	if err != nil {
		return raise(err)
	}
	return object.Nil
}

func (m *fsModule) mv(ctx context.Context, args ...object.Object) object.Object {
	src, dst, _, oerr := twoPaths("fs.mv", args)
	if oerr != nil {
		return oerr
	}
	return nilOr(callNoFD(m.c, ipc.OpMove, &ipc.MoveReq{Src: src, Dst: dst}, nil))
}

func (m *fsModule) cp(ctx context.Context, args ...object.Object) object.Object {
	src, dst, o, oerr := twoPaths("fs.cp", args, "force", "preserve")
	if oerr != nil {
		return oerr
	}
	opt, oerr := o.bools("force", "preserve")
	if oerr != nil {
		return oerr
	}
	var resp ipc.WriteResp
	if err := callNoFD(m.c, ipc.OpCopy, &ipc.CopyReq{Src: src, Dst: dst, Force: opt[0], Preserve: opt[1]}, &resp); err != nil {
		return raise(err)
	}
	return object.NewInt(resp.N)
}

func (m *fsModule) touch(ctx context.Context, args ...object.Object) object.Object {
	_, p, _, oerr := pathAndOptions("fs.touch", args, 1)
	if oerr != nil {
		return oerr
	}
	return nilOr(callNoFD(m.c, ipc.OpTouch, &ipc.PathReq{Path: p}, nil))
}

func (m *fsModule) chmod(ctx context.Context, args ...object.Object) object.Object {
	pos, p, o, oerr := pathAndOptions("fs.chmod", args, 2, "follow")
	if oerr != nil {
		return oerr
	}
	var mode int64
	switch v := pos[1].(type) {
	case *object.Int:
		mode = v.Value()
	case *object.String:
		// "0640" or "640": octal, as chmod(1) reads it.
		n, ok := parseOctal(v.Value())
		if !ok {
			return object.Errorf("value error: fs.chmod() mode %q is not an octal number", v.Value())
		}
		mode = n
	default:
		return object.TypeErrorf("type error: fs.chmod() expected an int or octal string mode (%s given)", pos[1].Type())
	}
	if mode < 0 || mode > 0o7777 {
		return object.Errorf("value error: fs.chmod() mode %o is out of range", mode)
	}
	follow, oerr := o.bool("follow")
	if oerr != nil {
		return oerr
	}
	return nilOr(callNoFD(m.c, ipc.OpChmod, &ipc.ChmodReq{Path: p, Mode: uint32(mode), Follow: follow}, nil))
}

func parseOctal(s string) (int64, bool) {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "0o"), "0")
	if s == "" {
		return 0, true
	}
	var n int64
	for _, c := range s {
		if c < '0' || c > '7' {
			return 0, false
		}
		if n = n*8 + int64(c-'0'); n > 0o7777 {
			return 0, false
		}
	}
	return n, true
}

func (m *fsModule) chown(ctx context.Context, args ...object.Object) object.Object {
	pos, p, o, oerr := pathAndOptions("fs.chown", args, 3, "follow")
	if oerr != nil {
		return oerr
	}
	ids := [2]string{}
	for i := range ids {
		switch v := pos[1+i].(type) {
		case *object.String:
			ids[i] = v.Value()
		case *object.Int:
			ids[i] = v.String()
		case *object.NilType:
		default:
			return object.TypeErrorf("type error: fs.chown() expected a name, an id or nil (%s given)", pos[1+i].Type())
		}
	}
	follow, oerr := o.bool("follow")
	if oerr != nil {
		return oerr
	}
	return nilOr(callNoFD(m.c, ipc.OpChown, &ipc.ChownReq{Path: p, User: ids[0], Group: ids[1], Follow: follow}, nil))
}

func (m *fsModule) readlink(ctx context.Context, args ...object.Object) object.Object {
	_, p, _, oerr := pathAndOptions("fs.readlink", args, 1)
	if oerr != nil {
		return oerr
	}
	var resp ipc.ReadlinkResp
	if err := callNoFD(m.c, ipc.OpReadlink, &ipc.PathReq{Path: p}, &resp); err != nil {
		return raise(err)
	}
	return object.NewString(resp.Target)
}

func (m *fsModule) symlink(ctx context.Context, args ...object.Object) object.Object {
	target, link, o, oerr := twoPaths("fs.symlink", args, "force")
	if oerr != nil {
		return oerr
	}
	force, oerr := o.bool("force")
	if oerr != nil {
		return oerr
	}
	return nilOr(callNoFD(m.c, ipc.OpSymlink, &ipc.SymlinkReq{Target: target, Link: link, Force: force}, nil))
}

func (m *fsModule) setxattr(ctx context.Context, args ...object.Object) object.Object {
	pos, p, _, oerr := pathAndOptions("fs.setxattr", args, 3)
	if oerr != nil {
		return oerr
	}
	name, oerr := stringArg("fs.setxattr", pos, 1, "name")
	if oerr != nil {
		return oerr
	}
	var value []byte
	switch v := pos[2].(type) {
	case *object.String:
		value = []byte(v.Value())
	case *object.ByteSlice:
		value = v.Value()
	default:
		return object.TypeErrorf("type error: fs.setxattr() expected a string or byte_slice value (%s given)", pos[2].Type())
	}
	return nilOr(callNoFD(m.c, ipc.OpSetXattr, &ipc.SetXattrReq{Path: p, Name: name, Value: value}, nil))
}

// ---- text functions, composed from reads and writes ------------------------

// lines splits text into lines without their newline.
func lines(data []byte) []string {
	s := string(data)
	if s == "" {
		return nil
	}
	s = strings.TrimSuffix(s, "\n")
	return strings.Split(s, "\n")
}

func textLines(ss []string) *object.List {
	items := make([]object.Object, len(ss))
	for i, s := range ss {
		items[i] = object.NewString(s)
	}
	return object.NewList(items)
}

func (m *fsModule) grep(ctx context.Context, args ...object.Object) object.Object {
	return m.grepIn("fs.grep", false, args)
}

func (m *fsModule) zgrep(ctx context.Context, args ...object.Object) object.Object {
	return m.grepIn("fs.zgrep", true, args)
}

func (m *fsModule) grepIn(fn string, gz bool, args []object.Object) object.Object {
	pos, o, oerr := splitArgs(fn, args, 2, "ignore_case", "invert", "count", "line_number", "max_count")
	if oerr != nil {
		return oerr
	}
	pat, oerr := stringArg(fn, pos, 0, "pattern")
	if oerr != nil {
		return oerr
	}
	p, oerr := stringArg(fn, pos, 1, "path")
	if oerr != nil {
		return oerr
	}
	opt, oerr := o.bools("ignore_case", "invert", "count", "line_number")
	if oerr != nil {
		return oerr
	}
	maxCount, oerr := intOpt(o, "max_count", 0)
	if oerr != nil {
		return oerr
	}
	if opt[0] {
		pat = "(?i)" + pat
	}
	re, err := regexp.Compile(pat)
	if err != nil {
		return object.Errorf("value error: %s() pattern: %v", fn, err)
	}
	var data []byte
	if gz {
		data, err = m.gunzip(p)
	} else {
		data, err = readFile(m.c, p, false)
	}
	if err != nil {
		return raise(err)
	}
	var out []object.Object
	n := int64(0)
	for i, l := range lines(data) {
		if re.MatchString(l) == opt[1] {
			continue
		}
		n++
		if !opt[2] {
			if opt[3] {
				out = append(out, object.NewMap(map[string]object.Object{
					"line_number": object.NewInt(int64(i + 1)), "line": object.NewString(l),
				}))
			} else {
				out = append(out, object.NewString(l))
			}
		}
		if maxCount > 0 && n >= maxCount {
			break
		}
	}
	if opt[2] {
		return object.NewInt(n)
	}
	if out == nil {
		out = []object.Object{}
	}
	return object.NewList(out)
}

func (m *fsModule) head(ctx context.Context, args ...object.Object) object.Object {
	_, p, o, oerr := pathAndOptions("fs.head", args, 1, "n")
	if oerr != nil {
		return oerr
	}
	n, oerr := intOpt(o, "n", 10)
	if oerr != nil {
		return oerr
	}
	data, err := readFile(m.c, p, false)
	if err != nil {
		return raise(err)
	}
	ls := lines(data)
	return textLines(ls[:min(max(n, 0), int64(len(ls)))])
}

// tail gives the last n lines, or with from (1-based, like `tail -n +K`)
// the lines from line from on.
func (m *fsModule) tail(ctx context.Context, args ...object.Object) object.Object {
	_, p, o, oerr := pathAndOptions("fs.tail", args, 1, "n", "from")
	if oerr != nil {
		return oerr
	}
	n, oerr := intOpt(o, "n", 10)
	if oerr != nil {
		return oerr
	}
	from, oerr := intOpt(o, "from", 0)
	if oerr != nil {
		return oerr
	}
	data, err := readFile(m.c, p, false)
	if err != nil {
		return raise(err)
	}
	ls := lines(data)
	if from > 0 {
		return textLines(ls[min(from-1, int64(len(ls))):])
	}
	return textLines(ls[int64(len(ls))-min(max(n, 0), int64(len(ls))):])
}

func (m *fsModule) wc(ctx context.Context, args ...object.Object) object.Object {
	_, p, _, oerr := pathAndOptions("fs.wc", args, 1)
	if oerr != nil {
		return oerr
	}
	data, err := readFile(m.c, p, false)
	if err != nil {
		return raise(err)
	}
	return object.NewMap(map[string]object.Object{
		"lines": object.NewInt(int64(bytes.Count(data, []byte{'\n'}))),
		"words": object.NewInt(int64(len(bytes.Fields(data)))),
		"bytes": object.NewInt(int64(len(data))),
	})
}

// sed replaces pattern with repl on each line (the first match of each
// line, every match with {all: true}); pattern is literal unless {regex:
// true}, where repl may use $1. The result is returned; {in_place: true}
// also writes it back (an atomic replace, authorised as fs.write).
func (m *fsModule) sed(ctx context.Context, args ...object.Object) object.Object {
	pos, o, oerr := splitArgs("fs.sed", args, 3, "regex", "all", "in_place")
	if oerr != nil {
		return oerr
	}
	var s [3]string
	for i, what := range []string{"pattern", "replacement", "path"} {
		v, oerr := stringArg("fs.sed", pos, i, what)
		if oerr != nil {
			return oerr
		}
		s[i] = v
	}
	opt, oerr := o.bools("regex", "all", "in_place")
	if oerr != nil {
		return oerr
	}
	pat := s[0]
	if !opt[0] {
		pat = regexp.QuoteMeta(pat)
	}
	re, err := regexp.Compile(pat)
	if err != nil {
		return object.Errorf("value error: fs.sed() pattern: %v", err)
	}
	repl := s[1]
	if !opt[0] {
		repl = strings.ReplaceAll(repl, "$", "$$")
	}
	data, err := readFile(m.c, s[2], false)
	if err != nil {
		return raise(err)
	}
	parts := strings.SplitAfter(string(data), "\n")
	var b strings.Builder
	for _, l := range parts {
		body, nl := strings.CutSuffix(l, "\n")
		if opt[1] {
			body = re.ReplaceAllString(body, repl)
		} else if loc := re.FindStringSubmatchIndex(body); loc != nil {
			body = body[:loc[0]] + string(re.ExpandString(nil, repl, body, loc)) + body[loc[1]:]
		}
		b.WriteString(body)
		if nl {
			b.WriteByte('\n')
		}
	}
	out := b.String()
	if opt[2] {
		if _, err := writeFile(m.c, s[2], []byte(out), false, 0); err != nil {
			return raise(err)
		}
	}
	return object.NewString(out)
}

func (m *fsModule) zcat(ctx context.Context, args ...object.Object) object.Object {
	_, p, _, oerr := pathAndOptions("fs.zcat", args, 1)
	if oerr != nil {
		return oerr
	}
	data, err := m.gunzip(p)
	if err != nil {
		return raise(err)
	}
	return object.NewString(string(data))
}

// gunzip reads a gzip file (authorised as a read) and decompresses it in
// the worker, bounded by MaxRead and by the ratio cap.
func (m *fsModule) gunzip(p string) ([]byte, error) {
	comp, err := readFile(m.c, p, false)
	if err != nil {
		return nil, err
	}
	return gunzipCapped(comp, p)
}

func gunzipCapped(comp []byte, p string) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(comp))
	if err != nil {
		return nil, ipc.Errorf(ipc.CodeInvalid, "%s is not gzip data: %v", p, err)
	}
	limit := min(int64(MaxRead), int64(len(comp))*maxRatio+ratioSlack)
	var out bytes.Buffer
	n, err := io.Copy(&out, io.LimitReader(zr, limit+1))
	if err != nil {
		return nil, ipc.Errorf(ipc.CodeInvalid, "%s: %v", p, err)
	}
	if n > limit {
		return nil, ipc.Errorf(ipc.CodeLimit, "%s decompresses to more than %d bytes (output cap %d, ratio cap %d:1): refused", p, limit, MaxRead, maxRatio)
	}
	return out.Bytes(), nil
}

// gzip compresses src into dst: a read of src and a write of dst.
func (m *fsModule) gzip(ctx context.Context, args ...object.Object) object.Object {
	src, dst, _, oerr := twoPaths("fs.gzip", args)
	if oerr != nil {
		return oerr
	}
	data, err := readFile(m.c, src, false)
	if err != nil {
		return raise(err)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Name = path.Base(src)
	if _, err := zw.Write(data); err != nil {
		return raise(err)
	}
	if err := zw.Close(); err != nil {
		return raise(err)
	}
	n, err := writeFile(m.c, dst, buf.Bytes(), false, 0)
	if err != nil {
		return raise(err)
	}
	return object.NewInt(n)
}

// ---- tree functions, on the broker's walk ----------------------------------

// walk fetches every page of a broker walk.
func walk(c Caller, root string, maxDepth int) ([]ipc.WalkEntry, bool, error) {
	var all []ipc.WalkEntry
	for {
		var resp ipc.WalkResp
		if err := callNoFD(c, ipc.OpWalk, &ipc.WalkReq{Path: root, MaxDepth: maxDepth, Skip: len(all)}, &resp); err != nil {
			return nil, false, err
		}
		all = append(all, resp.Entries...)
		if !resp.More || len(resp.Entries) == 0 {
			return all, resp.Truncated, nil
		}
	}
}

// du sums the sizes of the regular files under path that the policy lets
// the principal see: {total_bytes, entries: [{path, bytes}]}, one entry
// per directory (down to max_depth below path), or only path with
// summarize.
func (m *fsModule) du(ctx context.Context, args ...object.Object) object.Object {
	_, p, o, oerr := pathAndOptions("fs.du", args, 1, "summarize", "max_depth")
	if oerr != nil {
		return oerr
	}
	summarize, oerr := o.bool("summarize")
	if oerr != nil {
		return oerr
	}
	maxDepth, oerr := intOpt(o, "max_depth", -1)
	if oerr != nil {
		return oerr
	}
	entries, _, err := walk(m.c, p, 0)
	if err != nil {
		return raise(err)
	}
	root := strings.TrimSuffix(path.Clean("/"+p), "/")
	sums := map[string]int64{root: 0}
	for _, e := range entries {
		if e.Kind == "dir" {
			if _, ok := sums[e.Path]; !ok {
				sums[e.Path] = 0
			}
			continue
		}
		if e.Kind != "file" {
			continue
		}
		for d := path.Dir(e.Path); ; d = path.Dir(d) {
			if _, ok := sums[d]; ok || d == root {
				sums[d] += e.Size
			}
			if d == root || d == "/" || len(d) < len(root) {
				break
			}
		}
	}
	total := sums[root]
	var dirs []string
	for d := range sums {
		depth := strings.Count(strings.TrimPrefix(d, root), "/")
		if summarize && d != root || maxDepth >= 0 && int64(depth) > maxDepth {
			continue
		}
		dirs = append(dirs, d)
	}
	sort.Strings(dirs)
	list := make([]object.Object, len(dirs))
	for i, d := range dirs {
		name := d
		if name == "" {
			name = "/"
		}
		list[i] = object.NewMap(map[string]object.Object{"path": object.NewString(name), "bytes": object.NewInt(sums[d])})
	}
	return object.NewMap(map[string]object.Object{"total_bytes": object.NewInt(total), "entries": object.NewList(list)})
}

// find lists the absolute paths under dir whose name matches glob
// (path.Match), recursively unless {recursive: false}, filtered by type
// (file, dir, symlink, or f, d, l) and size.
func (m *fsModule) find(ctx context.Context, args ...object.Object) object.Object {
	pos, o, oerr := splitArgs("fs.find", args, 2, "recursive", "type", "min_size", "max_size")
	if oerr != nil {
		return oerr
	}
	dir, oerr := stringArg("fs.find", pos, 0, "path")
	if oerr != nil {
		return oerr
	}
	glob, oerr := stringArg("fs.find", pos, 1, "glob")
	if oerr != nil {
		return oerr
	}
	if _, err := path.Match(glob, ""); err != nil {
		return object.Errorf("value error: fs.find() glob %q: %v", glob, err)
	}
	recursive := true
	if v, ok := o.m["recursive"]; ok && v != object.Nil {
		b, ok := v.(*object.Bool)
		if !ok {
			return object.TypeErrorf("type error: fs.find() option \"recursive\" must be a bool (%s given)", v.Type())
		}
		recursive = b.Value()
	}
	typ, oerr := o.str("type")
	if oerr != nil {
		return oerr
	}
	switch typ {
	case "f":
		typ = "file"
	case "d":
		typ = "dir"
	case "l":
		typ = "symlink"
	case "", "file", "dir", "symlink", "fifo", "socket", "device":
	default:
		return object.Errorf("value error: fs.find() type %q is not one of file, dir, symlink, fifo, socket, device", typ)
	}
	minSize, oerr := intOpt(o, "min_size", -1)
	if oerr != nil {
		return oerr
	}
	maxSize, oerr := intOpt(o, "max_size", -1)
	if oerr != nil {
		return oerr
	}
	depth := 0
	if !recursive {
		depth = 1
	}
	entries, _, err := walk(m.c, dir, depth)
	if err != nil {
		return raise(err)
	}
	out := []object.Object{}
	for _, e := range entries {
		if ok, _ := path.Match(glob, path.Base(e.Path)); !ok {
			continue
		}
		if typ != "" && e.Kind != typ || minSize >= 0 && e.Size < minSize || maxSize >= 0 && e.Size > maxSize {
			continue
		}
		out = append(out, object.NewString(e.Path))
	}
	return object.NewList(out)
}

// execute runs a file in the broker and returns {exit_code, stdout,
// stderr}; see the broker's execute op for what is checked.
func (m *fsModule) execute(ctx context.Context, args ...object.Object) object.Object {
	_, p, o, oerr := pathAndOptions("fs.execute", args, 1, "args", "env", "user", "group", "timeout")
	if oerr != nil {
		return oerr
	}
	req := &ipc.ExecuteReq{Path: p, Env: map[string]string{}}
	if v, ok := o.m["args"]; ok && v != object.Nil {
		l, ok := v.(*object.List)
		if !ok {
			return object.TypeErrorf("type error: fs.execute() option \"args\" must be a list of strings (%s given)", v.Type())
		}
		for _, it := range l.Value() {
			s, ok := it.(*object.String)
			if !ok {
				return object.TypeErrorf("type error: fs.execute() args must be strings (%s given)", it.Type())
			}
			req.Args = append(req.Args, s.Value())
		}
	}
	if v, ok := o.m["env"]; ok && v != object.Nil {
		mp, ok := v.(*object.Map)
		if !ok {
			return object.TypeErrorf("type error: fs.execute() option \"env\" must be a map of strings (%s given)", v.Type())
		}
		for k, it := range mp.Value() {
			s, ok := it.(*object.String)
			if !ok {
				return object.TypeErrorf("type error: fs.execute() env values must be strings (%s given)", it.Type())
			}
			req.Env[k] = s.Value()
		}
	}
	var oerr2 *object.Error
	if req.User, oerr2 = o.str("user"); oerr2 != nil {
		return oerr2
	}
	if req.Group, oerr2 = o.str("group"); oerr2 != nil {
		return oerr2
	}
	t, oerr := intOpt(o, "timeout", 0)
	if oerr != nil {
		return oerr
	}
	req.TimeoutMs = t * 1000
	var resp ipc.ExecuteResp
	if err := callNoFD(m.c, ipc.OpExecute, req, &resp); err != nil {
		return raise(err)
	}
	return object.NewMap(map[string]object.Object{
		"exit_code": object.NewInt(int64(resp.ExitCode)),
		"stdout":    object.NewString(string(resp.Stdout)),
		"stderr":    object.NewString(string(resp.Stderr)),
		"timed_out": object.NewBool(resp.TimedOut),
	})
}
