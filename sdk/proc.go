package sdk

import (
	"context"
	"strconv"
	"strings"

	"github.com/risor-io/risor/object"

	"github.com/rex-sh/rex/ipc"
)

// procModule is the `proc` module: listing, signalling and descriptor
// inspection of host processes, each done and authorised by the broker.
type procModule struct {
	c Caller
}

func newProcModule(c Caller) *object.Module {
	m := &procModule{c: c}
	return object.NewBuiltinsModule("proc", map[string]object.Object{
		"list": object.NewBuiltin("list", m.list),
		"kill": object.NewBuiltin("kill", m.kill),
		"fds":  object.NewBuiltin("fds", m.fds),
		"lsof": object.NewBuiltin("lsof", m.lsof),
	})
}

func (m *procModule) list(ctx context.Context, args ...object.Object) object.Object {
	if _, _, oerr := splitArgs("proc.list", args, 0); oerr != nil {
		return oerr
	}
	var resp ipc.ProcListResp
	if err := callNoFD(m.c, ipc.OpProcList, ipc.Empty{}, &resp); err != nil {
		return raise(err)
	}
	out := make([]object.Object, len(resp.Procs))
	for i, p := range resp.Procs {
		out[i] = object.NewMap(map[string]object.Object{
			"pid":      object.NewInt(int64(p.PID)),
			"ppid":     object.NewInt(int64(p.PPID)),
			"name":     object.NewString(p.Name),
			"username": object.NewString(p.Username),
			"command":  object.NewString(p.Command),
			"state":    object.NewString(p.State),
			"rss_kb":   object.NewInt(p.RSSKB),
			"start":    object.NewInt(int64(p.Start)),
		})
	}
	return object.NewList(out)
}

// signals are the names proc.kill accepts, with or without "SIG".
var signals = map[string]int{
	"HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "BUS": 7, "FPE": 8,
	"KILL": 9, "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14, "TERM": 15,
	"CHLD": 17, "CONT": 18, "STOP": 19, "TSTP": 20, "TTIN": 21, "TTOU": 22, "URG": 23,
	"XCPU": 24, "XFSZ": 25, "VTALRM": 26, "PROF": 27, "WINCH": 28, "IO": 29, "PWR": 30, "SYS": 31,
}

func parseSignal(v object.Object) (int, *object.Error) {
	switch s := v.(type) {
	case *object.Int:
		return int(s.Value()), nil
	case *object.String:
		name := strings.TrimPrefix(strings.ToUpper(s.Value()), "SIG")
		if n, ok := signals[name]; ok {
			return n, nil
		}
		if n, err := strconv.Atoi(name); err == nil {
			return n, nil
		}
		return 0, object.Errorf("value error: proc.kill() unknown signal %q", s.Value())
	}
	return 0, object.TypeErrorf("type error: proc.kill() expected a signal name or number (%s given)", v.Type())
}

// pidArg reads a pid given as an int or as a map from proc.list; the map's
// start time rides along so that the broker refuses a recycled pid.
func pidArg(fn string, v object.Object) (int, uint64, *object.Error) {
	switch p := v.(type) {
	case *object.Int:
		return int(p.Value()), 0, nil
	case *object.Map:
		pid, ok := p.Get("pid").(*object.Int)
		if !ok {
			return 0, 0, object.TypeErrorf("type error: %s() expected a map with an int pid", fn)
		}
		var start uint64
		if st, ok := p.Get("start").(*object.Int); ok && st.Value() > 0 {
			start = uint64(st.Value())
		}
		return int(pid.Value()), start, nil
	}
	return 0, 0, object.TypeErrorf("type error: %s() expected a pid or a process map (%s given)", fn, v.Type())
}

// kill(pid, signal): signal defaults to SIGTERM.
func (m *procModule) kill(ctx context.Context, args ...object.Object) object.Object {
	if len(args) < 1 || len(args) > 2 {
		return object.NewArgsRangeError("proc.kill", 1, 2, len(args))
	}
	pid, start, oerr := pidArg("proc.kill", args[0])
	if oerr != nil {
		return oerr
	}
	sig := 15
	if len(args) == 2 {
		if sig, oerr = parseSignal(args[1]); oerr != nil {
			return oerr
		}
	}
	if err := callNoFD(m.c, ipc.OpProcKill, &ipc.ProcKillReq{PID: pid, Signal: sig, Start: start}, &ipc.Empty{}); err != nil {
		return raise(err)
	}
	return object.Nil
}

func fdList(fds []ipc.ProcFD) *object.List {
	out := make([]object.Object, len(fds))
	for i, f := range fds {
		out[i] = object.NewMap(map[string]object.Object{
			"pid":    object.NewInt(int64(f.PID)),
			"name":   object.NewString(f.Name),
			"fd":     object.NewInt(int64(f.FD)),
			"target": object.NewString(f.Target),
		})
	}
	return object.NewList(out)
}

func (m *procModule) fds(ctx context.Context, args ...object.Object) object.Object {
	if len(args) != 1 {
		return object.NewArgsError("proc.fds", 1, len(args))
	}
	pid, _, oerr := pidArg("proc.fds", args[0])
	if oerr != nil {
		return oerr
	}
	var resp ipc.ProcFDsResp
	if err := callNoFD(m.c, ipc.OpProcFDs, &ipc.PIDReq{PID: pid}, &resp); err != nil {
		return raise(err)
	}
	return fdList(resp.FDs)
}

func (m *procModule) lsof(ctx context.Context, args ...object.Object) object.Object {
	_, path, _, oerr := pathAndOptions("proc.lsof", args, 1)
	if oerr != nil {
		return oerr
	}
	var resp ipc.ProcFDsResp
	if err := callNoFD(m.c, ipc.OpProcLsof, &ipc.LsofReq{Path: path}, &resp); err != nil {
		return raise(err)
	}
	return fdList(resp.FDs)
}
