package sdk

import (
	"context"

	"github.com/risor-io/risor/object"

	"github.com/rex-sh/rex/ipc"
)

// svcModule is the `svc` module: systemd units, driven by the broker over
// the system bus.
type svcModule struct {
	c Caller
}

func newSvcModule(c Caller) *object.Module {
	m := &svcModule{c: c}
	fns := map[string]object.Object{
		"daemon_reload": object.NewBuiltin("daemon_reload", m.daemonReload),
	}
	for _, a := range []string{"status", "start", "stop", "restart"} {
		fns[a] = object.NewBuiltin(a, m.unit(a))
	}
	return object.NewBuiltinsModule("svc", fns)
}

// unit returns the builtin for one unit action. status gives {unit,
// description, load_state, active_state, sub_state}; the others {unit, job}.
func (m *svcModule) unit(action string) object.BuiltinFunction {
	fn := "svc." + action
	return func(ctx context.Context, args ...object.Object) object.Object {
		pos, _, oerr := splitArgs(fn, args, 1)
		if oerr != nil {
			return oerr
		}
		unit, oerr := stringArg(fn, pos, 0, "unit")
		if oerr != nil {
			return oerr
		}
		var r ipc.SvcResp
		if err := callNoFD(m.c, ipc.OpSvc, &ipc.SvcReq{Unit: unit, Action: action}, &r); err != nil {
			return raise(err)
		}
		if action != "status" {
			return object.NewMap(map[string]object.Object{"unit": object.NewString(r.Unit), "job": object.NewString(r.Job)})
		}
		return object.NewMap(map[string]object.Object{
			"unit": object.NewString(r.Unit), "description": object.NewString(r.Description),
			"load_state": object.NewString(r.LoadState), "active_state": object.NewString(r.ActiveState),
			"sub_state": object.NewString(r.SubState),
		})
	}
}

func (m *svcModule) daemonReload(ctx context.Context, args ...object.Object) object.Object {
	if _, _, oerr := splitArgs("svc.daemon_reload", args, 0); oerr != nil {
		return oerr
	}
	if err := callNoFD(m.c, ipc.OpDaemonReload, ipc.Empty{}, &ipc.Empty{}); err != nil {
		return raise(err)
	}
	return object.Nil
}
