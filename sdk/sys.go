package sdk

import (
	"context"

	"github.com/risor-io/risor/object"

	"github.com/rex-sh/rex/ipc"
)

// sysModule is the `sys` module: host figures, disk usage, the kernel log
// and kernel parameters, all read and written by the broker.
type sysModule struct {
	c Caller
}

func newSysModule(c Caller) *object.Module {
	m := &sysModule{c: c}
	fns := map[string]object.Object{
		"df":          object.NewBuiltin("df", m.df),
		"dmesg":       object.NewBuiltin("dmesg", m.dmesg),
		"sysctl_get":  object.NewBuiltin("sysctl_get", m.sysctlGet),
		"sysctl_set":  object.NewBuiltin("sysctl_set", m.sysctlSet),
		"sysctl_load": object.NewBuiltin("sysctl_load", m.sysctlLoad),
	}
	for _, what := range []string{"uname", "hostname", "cpus", "uptime", "loadavg", "meminfo"} {
		fns[what] = object.NewBuiltin(what, m.info(what))
	}
	return object.NewBuiltinsModule("sys", fns)
}

// info returns the builtin for one figure of OpSysInfo.
func (m *sysModule) info(what string) object.BuiltinFunction {
	return func(ctx context.Context, args ...object.Object) object.Object {
		if _, _, oerr := splitArgs("sys."+what, args, 0); oerr != nil {
			return oerr
		}
		var r ipc.SysInfoResp
		if err := callNoFD(m.c, ipc.OpSysInfo, &ipc.SysInfoReq{What: what}, &r); err != nil {
			return raise(err)
		}
		switch what {
		case "uname":
			out := make(map[string]object.Object, len(r.Uname))
			for k, v := range r.Uname {
				out[k] = object.NewString(v)
			}
			return object.NewMap(out)
		case "hostname":
			return object.NewString(r.Hostname)
		case "cpus":
			return object.NewInt(int64(r.CPUs))
		case "uptime":
			return object.NewFloat(r.Uptime)
		case "loadavg":
			if len(r.Load) != 3 {
				return raise(protocolError("loadavg reply has %d values", len(r.Load)))
			}
			return object.NewList([]object.Object{
				object.NewFloat(r.Load[0]), object.NewFloat(r.Load[1]), object.NewFloat(r.Load[2]),
			})
		}
		out := make(map[string]object.Object, len(r.Mem))
		for k, v := range r.Mem {
			out[k] = object.NewInt(v)
		}
		return object.NewMap(out)
	}
}

// df({path}) → list of {mount, source, fstype, total, used, avail, inodes,
// inodes_free}, sizes in bytes.
func (m *sysModule) df(ctx context.Context, args ...object.Object) object.Object {
	_, o, oerr := splitArgs("sys.df", args, 0, "path")
	if oerr != nil {
		return oerr
	}
	path, oerr := o.str("path")
	if oerr != nil {
		return oerr
	}
	var r ipc.DfResp
	if err := callNoFD(m.c, ipc.OpSysDf, &ipc.DfReq{Path: path}, &r); err != nil {
		return raise(err)
	}
	out := make([]object.Object, len(r.Entries))
	for i, e := range r.Entries {
		out[i] = object.NewMap(map[string]object.Object{
			"mount": object.NewString(e.Mount), "source": object.NewString(e.Source),
			"fstype": object.NewString(e.FSType), "total": object.NewInt(int64(e.Total)),
			"used": object.NewInt(int64(e.Used)), "avail": object.NewInt(int64(e.Avail)),
			"inodes": object.NewInt(int64(e.Inodes)), "inodes_free": object.NewInt(int64(e.InodesFree)),
		})
	}
	return object.NewList(out)
}

// dmesg({n}) → the last n (default 100) kernel log lines.
func (m *sysModule) dmesg(ctx context.Context, args ...object.Object) object.Object {
	_, o, oerr := splitArgs("sys.dmesg", args, 0, "n")
	if oerr != nil {
		return oerr
	}
	n, oerr := o.int("n", 100)
	if oerr != nil {
		return oerr
	}
	var r ipc.LinesResp
	if err := callNoFD(m.c, ipc.OpSysDmesg, &ipc.DmesgReq{N: int(n)}, &r); err != nil {
		return raise(err)
	}
	return stringList(r.Lines)
}

func stringList(ss []string) *object.List {
	out := make([]object.Object, len(ss))
	for i, s := range ss {
		out[i] = object.NewString(s)
	}
	return object.NewList(out)
}

func (m *sysModule) sysctlGet(ctx context.Context, args ...object.Object) object.Object {
	pos, _, oerr := splitArgs("sys.sysctl_get", args, 1)
	if oerr != nil {
		return oerr
	}
	name, oerr := stringArg("sys.sysctl_get", pos, 0, "name")
	if oerr != nil {
		return oerr
	}
	var r ipc.SysctlResp
	if err := callNoFD(m.c, ipc.OpSysctlGet, &ipc.SysctlReq{Name: name}, &r); err != nil {
		return raise(err)
	}
	return object.NewString(r.Value)
}

// sysctl_set(name, value): value is a string or an int.
func (m *sysModule) sysctlSet(ctx context.Context, args ...object.Object) object.Object {
	pos, _, oerr := splitArgs("sys.sysctl_set", args, 2)
	if oerr != nil {
		return oerr
	}
	name, oerr := stringArg("sys.sysctl_set", pos, 0, "name")
	if oerr != nil {
		return oerr
	}
	var value string
	switch v := pos[1].(type) {
	case *object.String:
		value = v.Value()
	case *object.Int:
		value = v.Inspect()
	default:
		return object.TypeErrorf("type error: sys.sysctl_set() expected a string or int value (%s given)", pos[1].Type())
	}
	if err := callNoFD(m.c, ipc.OpSysctlSet, &ipc.SysctlReq{Name: name, Value: value}, &ipc.Empty{}); err != nil {
		return raise(err)
	}
	return object.Nil
}

// sysctl_load() → {applied, errors}.
func (m *sysModule) sysctlLoad(ctx context.Context, args ...object.Object) object.Object {
	if _, _, oerr := splitArgs("sys.sysctl_load", args, 0); oerr != nil {
		return oerr
	}
	var r ipc.SysctlLoadResp
	if err := callNoFD(m.c, ipc.OpSysctlLoad, ipc.Empty{}, &r); err != nil {
		return raise(err)
	}
	return object.NewMap(map[string]object.Object{
		"applied": object.NewInt(int64(r.Applied)),
		"errors":  stringList(r.Errors),
	})
}

// int returns the integer option key, def when absent.
func (o options) int(key string, def int64) (int64, *object.Error) {
	v, ok := o.m[key]
	if !ok || v == object.Nil {
		return def, nil
	}
	n, ok := v.(*object.Int)
	if !ok {
		return 0, object.TypeErrorf("type error: %s() option %q must be an int (%s given)", o.fn, key, v.Type())
	}
	return n.Value(), nil
}
