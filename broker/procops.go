package broker

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"

	"github.com/rex-sh/rex/authz"
	"github.com/rex-sh/rex/broker/host"
	"github.com/rex-sh/rex/ipc"
)

// Process operations. Every process is authorised with the attributes read
// from /proc right before the decision; a process that must be acted on is
// pinned with a pidfd first, so that the decision and the action are about
// one process even if its pid is recycled in between.

func init() {
	handlers[ipc.OpProcList] = (*session).opProcList
	handlers[ipc.OpProcKill] = (*session).opProcKill
	handlers[ipc.OpProcFDs] = (*session).opProcFDs
	handlers[ipc.OpProcLsof] = (*session).opProcLsof
}

func procAction(name string) authz.Action { return authz.Action{NS: "process_system", Name: name} }

var (
	actProcList      = procAction("list")
	actProcKill      = procAction("kill")
	actProcInterrupt = procAction("interrupt")
	actProcListFDs   = procAction("list_fds")
)

func procResource(p host.Proc) authz.Resource {
	return authz.ProcessResource(p.PID, p.Name, p.Username, p.Command)
}

// allowed asks Cedar and audits, like authorize, but does not count a deny
// as a denial of the run: listings leave out what the policy hides, so that
// a script sees neither an error nor what it may not list.
func (s *session) allowed(a authz.Action, r authz.Resource) bool {
	d := s.run.decide(a, r, nil)
	s.auditQuiet(a, r, d)
	return d.Allow
}

// eachListable calls fn for every process the principal may act on with a
// (read from /proc just before its decision); fn returns false to stop.
func (s *session) eachListable(a authz.Action, fn func(p host.Proc) bool) error {
	pids, err := host.PIDs()
	if err != nil {
		return err
	}
	for _, pid := range pids {
		p, err := host.ReadProc(pid)
		if err != nil {
			continue // exited since the directory was read
		}
		if !s.allowed(a, procResource(p)) {
			continue
		}
		if !fn(p) {
			break
		}
	}
	return nil
}

func (s *session) opProcList(body []byte) (any, *os.File, error) {
	var req ipc.Empty
	if err := ipc.Unmarshal(body, &req); err != nil {
		return nil, nil, badRequest(err)
	}
	resp := &ipc.ProcListResp{Procs: []ipc.ProcInfo{}}
	err := s.eachListable(actProcList, func(p host.Proc) bool {
		if len(resp.Procs) == ipc.MaxProcs {
			resp.Truncated = true
			return false
		}
		resp.Procs = append(resp.Procs, ipc.ProcInfo{
			PID: p.PID, PPID: p.PPID, Name: p.Name, Username: p.Username,
			Command: p.Command, State: p.State, RSSKB: p.RSSKB, Start: p.Start,
		})
		return true
	})
	if err != nil {
		return nil, nil, err
	}
	return resp, nil, nil
}

// killAction is Rex's split: SIGKILL and SIGTERM are kill, every other
// signal is interrupt.
func killAction(sig int) authz.Action {
	if sig == int(unix.SIGKILL) || sig == int(unix.SIGTERM) {
		return actProcKill
	}
	return actProcInterrupt
}

// opProcKill pins the process with a pidfd, reads what Cedar will see of
// it, authorises, and signals through the pidfd. When the script passes the
// start time it saw (from proc.list), a different process under the same
// pid is refused as gone.
func (s *session) opProcKill(body []byte) (any, *os.File, error) {
	var req ipc.ProcKillReq
	if err := ipc.Unmarshal(body, &req); err != nil {
		return nil, nil, badRequest(err)
	}
	if req.Signal < 1 || req.Signal > 64 {
		return nil, nil, ipc.Errorf(ipc.CodeInvalid, "invalid signal %d", req.Signal)
	}
	pf, err := s.pin(req.PID)
	if err != nil {
		return nil, nil, err
	}
	defer pf.Close()
	if err := s.authorize(killAction(req.Signal), procResource(pf.Proc), nil); err != nil {
		return nil, nil, err
	}
	if req.Start != 0 && req.Start != pf.Proc.Start {
		return nil, nil, ipc.Errorf(ipc.CodeNotFound, "process %d: no such process (the pid now belongs to another process)", req.PID)
	}
	if err := pf.Signal(unix.Signal(req.Signal)); err != nil {
		return nil, nil, signalErr(req.PID, err)
	}
	return ipc.Empty{}, nil, nil
}

// pin opens a pidfd on pid, answering CodeInvalid for impossible pids.
func (s *session) pin(pid int) (*host.PIDFD, error) {
	if pid <= 0 {
		return nil, ipc.Errorf(ipc.CodeInvalid, "invalid pid %d", pid)
	}
	pf, err := host.OpenPID(pid)
	if err != nil {
		return nil, hostErr(err)
	}
	return pf, nil
}

func signalErr(pid int, err error) error {
	switch {
	case errors.Is(err, unix.ESRCH):
		return ipc.Errorf(ipc.CodeNotFound, "process %d: no such process", pid)
	case errors.Is(err, unix.EPERM):
		return ipc.Errorf(ipc.CodeIO, "process %d: the broker may not signal it", pid)
	}
	return hostErr(err)
}

func (s *session) opProcFDs(body []byte) (any, *os.File, error) {
	var req ipc.PIDReq
	if err := ipc.Unmarshal(body, &req); err != nil {
		return nil, nil, badRequest(err)
	}
	pf, err := s.pin(req.PID)
	if err != nil {
		return nil, nil, err
	}
	defer pf.Close()
	if err := s.authorize(actProcListFDs, procResource(pf.Proc), nil); err != nil {
		return nil, nil, err
	}
	fds, trunc, err := pf.FDs(ipc.MaxListEntries)
	if err != nil {
		return nil, nil, hostErr(err)
	}
	resp := &ipc.ProcFDsResp{FDs: make([]ipc.ProcFD, len(fds)), Truncated: trunc}
	for i, f := range fds {
		resp.FDs[i] = ipc.ProcFD{PID: req.PID, Name: pf.Proc.Name, FD: f.FD, Target: f.Target}
	}
	return resp, nil, nil
}

// opProcLsof looks through the descriptors of every process the principal
// may list_fds on; the others are left out, as in proc.list.
func (s *session) opProcLsof(body []byte) (any, *os.File, error) {
	var req ipc.LsofReq
	if err := ipc.Unmarshal(body, &req); err != nil {
		return nil, nil, badRequest(err)
	}
	want, err := canonical(req.Path)
	if err != nil {
		return nil, nil, err
	}
	resp := &ipc.ProcFDsResp{FDs: []ipc.ProcFD{}}
	err = s.eachListable(actProcListFDs, func(p host.Proc) bool {
		fds, _, err := host.ListFDs(p.PID, ipc.MaxListEntries)
		if err != nil {
			return true
		}
		for _, f := range fds {
			if f.Target != want {
				continue
			}
			if len(resp.FDs) == ipc.MaxListEntries {
				resp.Truncated = true
				return false
			}
			resp.FDs = append(resp.FDs, ipc.ProcFD{PID: p.PID, Name: p.Name, FD: f.FD, Target: f.Target})
		}
		return true
	})
	if err != nil {
		return nil, nil, err
	}
	return resp, nil, nil
}
