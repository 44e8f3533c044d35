package broker

import (
	"fmt"
	"os"

	"github.com/rex-sh/rex/authz"
	"github.com/rex-sh/rex/broker/host"
	"github.com/rex-sh/rex/ipc"
)

// System operations: host figures under sysinfo::list, kernel parameters
// as files under /proc/sys (file_system::read and write, so that policies
// written for files cover them), and sysctl::load.

func init() {
	handlers[ipc.OpSysInfo] = (*session).opSysInfo
	handlers[ipc.OpSysDf] = (*session).opSysDf
	handlers[ipc.OpSysDmesg] = (*session).opSysDmesg
	handlers[ipc.OpSysctlGet] = (*session).opSysctlGet
	handlers[ipc.OpSysctlSet] = (*session).opSysctlSet
	handlers[ipc.OpSysctlLoad] = (*session).opSysctlLoad
}

var (
	actSysinfoList = authz.Action{NS: "sysinfo", Name: "list"}
	actSysctlLoad  = authz.Action{NS: "sysctl", Name: "load"}

	// The singleton resources of sysinfo::list: uname and host name are
	// Uname; load, memory, disks and the kernel log are Sysinfo.
	resUname   = authz.EntityResource("sysinfo::Uname", "uname")
	resSysinfo = authz.EntityResource("sysinfo::Sysinfo", "sysinfo")
	resSysctl  = authz.EntityResource("sysctl::Sysctl", "sysctl")
)

// sysctls is the broker's one handle on /proc/sys.
var sysctls host.Sysctl

// maxValue caps a value sysctl_set writes: kernel parameters are short.
const maxValue = 4096

func (s *session) opSysInfo(body []byte) (any, *os.File, error) {
	var req ipc.SysInfoReq
	if err := ipc.Unmarshal(body, &req); err != nil {
		return nil, nil, badRequest(err)
	}
	res := resSysinfo
	switch req.What {
	case "uname", "hostname":
		res = resUname
	case "cpus", "uptime", "loadavg", "meminfo":
	default:
		return nil, nil, ipc.Errorf(ipc.CodeInvalid, "unknown system figure %q", req.What)
	}
	if err := s.authorize(actSysinfoList, res, nil); err != nil {
		return nil, nil, err
	}
	var resp ipc.SysInfoResp
	switch req.What {
	case "uname":
		resp.Uname = host.Uname()
	case "hostname":
		resp.Hostname = host.Uname()["nodename"]
	case "cpus":
		resp.CPUs = host.CPUs()
	case "uptime", "loadavg":
		up, load, err := host.Sysinfo()
		if err != nil {
			return nil, nil, fmt.Errorf("sysinfo: %w", err)
		}
		resp.Uptime, resp.Load = up, load
	case "meminfo":
		m, err := host.Meminfo()
		if err != nil {
			return nil, nil, fmt.Errorf("meminfo: %w", err)
		}
		resp.Mem = m
	}
	return &resp, nil, nil
}

func usageEntry(u host.Usage) ipc.DfEntry {
	return ipc.DfEntry{
		Mount: u.Mount, Source: u.Source, FSType: u.FSType, Total: u.Total, Used: u.Used,
		Avail: u.Avail, Inodes: u.Inodes, InodesFree: u.InodesFree,
	}
}

// opSysDf reports every real file system, or with a path the one holding
// it; the path is looked up and authorised (stat) like fs.stat.
func (s *session) opSysDf(body []byte) (any, *os.File, error) {
	var req ipc.DfReq
	if err := ipc.Unmarshal(body, &req); err != nil {
		return nil, nil, badRequest(err)
	}
	if err := s.authorize(actSysinfoList, resSysinfo, nil); err != nil {
		return nil, nil, err
	}
	if req.Path == "" {
		us, err := host.DiskUsage()
		if err != nil {
			return nil, nil, fmt.Errorf("df: %w", err)
		}
		resp := &ipc.DfResp{Entries: []ipc.DfEntry{}}
		for i, u := range us {
			if i == ipc.MaxListEntries {
				break
			}
			resp.Entries = append(resp.Entries, usageEntry(u))
		}
		return resp, nil, nil
	}
	t, err := s.lookup(req.Path, false)
	if err != nil {
		return nil, nil, err
	}
	defer t.close()
	if err := s.authorize(actStat, t.resource(), nil); err != nil {
		return nil, nil, err
	}
	if t.err != nil {
		return nil, nil, hostErr(t.err)
	}
	u, err := t.obj.Statfs()
	if err != nil {
		return nil, nil, hostErr(err)
	}
	u.Mount = t.path
	return &ipc.DfResp{Entries: []ipc.DfEntry{usageEntry(u)}}, nil, nil
}

func (s *session) opSysDmesg(body []byte) (any, *os.File, error) {
	var req ipc.DmesgReq
	if err := ipc.Unmarshal(body, &req); err != nil {
		return nil, nil, badRequest(err)
	}
	if req.N <= 0 || req.N > ipc.MaxListEntries {
		return nil, nil, ipc.Errorf(ipc.CodeInvalid, "dmesg: n must be 1..%d", ipc.MaxListEntries)
	}
	if err := s.authorize(actSysinfoList, resSysinfo, nil); err != nil {
		return nil, nil, err
	}
	lines, err := host.Dmesg(req.N)
	if err != nil {
		return nil, nil, ipc.Errorf(ipc.CodeIO, "dmesg: the kernel log cannot be read")
	}
	// Kernel lines can be long; keep the reply inside one packet.
	size := 0
	for i := len(lines) - 1; i >= 0; i-- {
		size += len(lines[i]) + 8
		if size > ipc.MaxPacket-4096 {
			lines = lines[i+1:]
			break
		}
	}
	return &ipc.LinesResp{Lines: append([]string{}, lines...)}, nil, nil
}

// sysctlTarget resolves a key to its path under /proc/sys and authorises a
// on that file, as the file policies would for fs.cat or fs.write.
func (s *session) sysctlTarget(key string, a authz.Action) (string, error) {
	p, err := host.SysctlPath(key)
	if err != nil {
		return "", err
	}
	if err := s.authorize(a, authz.FileResource(p, nil), nil); err != nil {
		return "", err
	}
	return p, nil
}

func (s *session) opSysctlGet(body []byte) (any, *os.File, error) {
	var req ipc.SysctlReq
	if err := ipc.Unmarshal(body, &req); err != nil {
		return nil, nil, badRequest(err)
	}
	p, err := s.sysctlTarget(req.Name, actRead)
	if err != nil {
		return nil, nil, err
	}
	v, err := sysctls.Get(p)
	if err != nil {
		return nil, nil, hostErr(err)
	}
	return &ipc.SysctlResp{Value: v}, nil, nil
}

func (s *session) opSysctlSet(body []byte) (any, *os.File, error) {
	var req ipc.SysctlReq
	if err := ipc.Unmarshal(body, &req); err != nil {
		return nil, nil, badRequest(err)
	}
	if len(req.Value) > maxValue {
		return nil, nil, ipc.Errorf(ipc.CodeLimit, "sysctl value over %d bytes", maxValue)
	}
	p, err := s.sysctlTarget(req.Name, actWrite)
	if err != nil {
		return nil, nil, err
	}
	if err := sysctls.Set(p, req.Value); err != nil {
		return nil, nil, hostErr(err)
	}
	return ipc.Empty{}, nil, nil
}

// opSysctlLoad applies the system's sysctl configuration, as
// systemd-sysctl does at boot. It is one decision (sysctl::load): the files
// are the operator's, not the script's.
func (s *session) opSysctlLoad(body []byte) (any, *os.File, error) {
	var req ipc.Empty
	if err := ipc.Unmarshal(body, &req); err != nil {
		return nil, nil, badRequest(err)
	}
	if err := s.authorize(actSysctlLoad, resSysctl, nil); err != nil {
		return nil, nil, err
	}
	sets, err := host.SysctlConfig(host.SysctlDirs, "/etc/sysctl.conf")
	if err != nil {
		return nil, nil, fmt.Errorf("sysctl configuration: %w", err)
	}
	resp := &ipc.SysctlLoadResp{Errors: []string{}}
	for _, set := range sets {
		p, err := host.SysctlPath(set.Key)
		if err == nil {
			err = sysctls.Set(p, set.Value)
		}
		switch {
		case err == nil:
			resp.Applied++
		case set.Optional && host.Code(err) == ipc.CodeNotFound:
		case len(resp.Errors) < 100:
			resp.Errors = append(resp.Errors, set.Key+": "+host.WireError(err).Message)
		}
	}
	return resp, nil, nil
}
