package broker

import (
	"os"
	"strings"

	"github.com/rex-sh/rex/authz"
	"github.com/rex-sh/rex/broker/host"
	"github.com/rex-sh/rex/ipc"
)

// systemd operations, over the system bus (DBUS_SYSTEM_BUS_ADDRESS, else
// /run/dbus/system_bus_socket), each one Cedar decision on the unit.

func init() {
	handlers[ipc.OpSvc] = (*session).opSvc
	handlers[ipc.OpDaemonReload] = (*session).opDaemonReload
}

var resSystemd = authz.EntityResource("systemd::Systemd", "systemd")

// systemd is the broker's handle on the service manager.
var systemd host.Systemd

// unitName completes a bare name with ".service", as systemctl does, and
// refuses what systemd would not take as a unit name.
func unitName(u string) (string, error) {
	if !strings.Contains(u, ".") {
		u += ".service"
	}
	if !host.ValidUnit(u) {
		return "", ipc.Errorf(ipc.CodeInvalid, "invalid unit name %q", u)
	}
	return u, nil
}

func (s *session) opSvc(body []byte) (any, *os.File, error) {
	var req ipc.SvcReq
	if err := ipc.Unmarshal(body, &req); err != nil {
		return nil, nil, badRequest(err)
	}
	switch req.Action {
	case "status", "start", "stop", "restart":
	default:
		return nil, nil, ipc.Errorf(ipc.CodeInvalid, "unknown unit action %q", req.Action)
	}
	unit, err := unitName(req.Unit)
	if err != nil {
		return nil, nil, err
	}
	if err := s.authorize(authz.Action{NS: "systemd", Name: req.Action}, authz.ServiceResource(unit), nil); err != nil {
		return nil, nil, err
	}
	if req.Action == "status" {
		st, err := systemd.Status(unit)
		if err != nil {
			return nil, nil, err
		}
		return &ipc.SvcResp{Unit: unit, Description: st.Description, LoadState: st.LoadState,
			ActiveState: st.ActiveState, SubState: st.SubState}, nil, nil
	}
	job, err := systemd.UnitAction(req.Action, unit)
	if err != nil {
		return nil, nil, err
	}
	return &ipc.SvcResp{Unit: unit, Job: job}, nil, nil
}

func (s *session) opDaemonReload(body []byte) (any, *os.File, error) {
	var req ipc.Empty
	if err := ipc.Unmarshal(body, &req); err != nil {
		return nil, nil, badRequest(err)
	}
	if err := s.authorize(authz.Action{NS: "systemd", Name: "daemon_reload"}, resSystemd, nil); err != nil {
		return nil, nil, err
	}
	return ipc.Empty{}, nil, systemd.Reload()
}
