package ipc

// Process, network and system messages (ops 100–305). Lists are capped by
// the broker so that every reply fits one packet (MaxPacket); the caps are
// here so that both sides agree on them.

const (
	// MaxProcs caps the processes of one proc.list reply.
	MaxProcs = 1000
	// MaxProcCommand caps the command line reported per process.
	MaxProcCommand = 256
	// MaxListEntries caps fds, lsof, connections, interfaces and dmesg
	// replies.
	MaxListEntries = 1000
	// MaxNetBody is the largest response body net.get returns: the reply
	// must fit one packet, with room left for the status and headers.
	MaxNetBody = 96 << 10
	// MaxNetHeaders caps the response header bytes net.get returns (and
	// accepts from the server).
	MaxNetHeaders = 16 << 10
)

// ProcInfo describes one process, as proc.list returns it. Name, Username
// and Command are the attributes Cedar saw for this process.
type ProcInfo struct {
	PID      int    `msgpack:"pid"`
	PPID     int    `msgpack:"ppid"`
	Name     string `msgpack:"name"`
	Username string `msgpack:"username"`
	Command  string `msgpack:"command"`
	State    string `msgpack:"state"`
	RSSKB    int64  `msgpack:"rss_kb"`
	// Start is the start time in clock ticks since boot: with the pid, it
	// names the process; proc.kill takes it back to refuse a recycled pid.
	Start uint64 `msgpack:"start"`
}

// ProcListResp lists the processes the policy lets the principal list.
// Truncated says MaxProcs was reached.
type ProcListResp struct {
	Procs     []ProcInfo `msgpack:"procs"`
	Truncated bool       `msgpack:"truncated"`
}

// ProcKillReq sends Signal (a number, 1–64) to PID. A non-zero Start must
// match the process's start time, else the pid was recycled and nothing is
// signalled.
type ProcKillReq struct {
	PID    int    `msgpack:"pid"`
	Signal int    `msgpack:"signal"`
	Start  uint64 `msgpack:"start"`
}

// PIDReq names one process.
type PIDReq struct {
	PID int `msgpack:"pid"`
}

// ProcFD is one open descriptor of a process: its number and what
// /proc/<pid>/fd/<n> links to.
type ProcFD struct {
	PID    int    `msgpack:"pid"`
	Name   string `msgpack:"name"`
	FD     int    `msgpack:"fd"`
	Target string `msgpack:"target"`
}

// ProcFDsResp lists descriptors (of one process for fds, of every listable
// process for lsof).
type ProcFDsResp struct {
	FDs       []ProcFD `msgpack:"fds"`
	Truncated bool     `msgpack:"truncated"`
}

// LsofReq asks which processes hold Path open.
type LsofReq struct {
	Path string `msgpack:"path"`
}

// NetGetReq is one HTTP GET done by the broker. TimeoutMs bounds the whole
// exchange, redirects included; MaxBytes caps the body (≤ MaxNetBody).
type NetGetReq struct {
	URL       string            `msgpack:"url"`
	Headers   map[string]string `msgpack:"headers"`
	TimeoutMs int64             `msgpack:"timeout_ms"`
	MaxBytes  int64             `msgpack:"max_bytes"`
}

// NetGetResp is the final response after redirects. URL is the last URL
// fetched.
type NetGetResp struct {
	Status  int               `msgpack:"status"`
	Headers map[string]string `msgpack:"headers"`
	Body    []byte            `msgpack:"body"`
	URL     string            `msgpack:"url"`
}

// NetConnectReq probes a TCP connection to Host:Port.
type NetConnectReq struct {
	Host      string `msgpack:"host"`
	Port      int    `msgpack:"port"`
	TimeoutMs int64  `msgpack:"timeout_ms"`
}

// NetConnectResp says where the probe connected and how long it took.
type NetConnectResp struct {
	Address string `msgpack:"address"`
	Ms      int64  `msgpack:"ms"`
}

// HostReq names a host to resolve.
type HostReq struct {
	Host string `msgpack:"host"`
}

// NetResolveResp lists the addresses a name resolved to.
type NetResolveResp struct {
	Addrs []string `msgpack:"addrs"`
}

// NetInterface is one network interface of the host.
type NetInterface struct {
	Name  string   `msgpack:"name"`
	Index int      `msgpack:"index"`
	MTU   int      `msgpack:"mtu"`
	MAC   string   `msgpack:"mac"`
	Flags []string `msgpack:"flags"`
	Addrs []string `msgpack:"addrs"`
}

// NetInterfacesResp lists the host's interfaces.
type NetInterfacesResp struct {
	Interfaces []NetInterface `msgpack:"interfaces"`
}

// NetConn is one socket from /proc/net/{tcp,tcp6,udp,udp6}.
type NetConn struct {
	Proto  string `msgpack:"proto"`
	Local  string `msgpack:"local"`
	Remote string `msgpack:"remote"`
	State  string `msgpack:"state"`
	UID    int    `msgpack:"uid"`
	Inode  uint64 `msgpack:"inode"`
}

// NetConnectionsResp lists the host's sockets.
type NetConnectionsResp struct {
	Conns     []NetConn `msgpack:"conns"`
	Truncated bool      `msgpack:"truncated"`
}

// SysInfoReq asks for one figure: uname, hostname, cpus, uptime, loadavg or
// meminfo.
type SysInfoReq struct {
	What string `msgpack:"what"`
}

// SysInfoResp carries the figure asked for; the other fields stay zero.
type SysInfoResp struct {
	Uname    map[string]string `msgpack:"uname"`
	Hostname string            `msgpack:"hostname"`
	CPUs     int               `msgpack:"cpus"`
	Uptime   float64           `msgpack:"uptime"`
	Load     []float64         `msgpack:"load"`
	Mem      map[string]int64  `msgpack:"mem"`
}

// DfReq asks for file system usage: of the file system holding Path, or of
// every mount when Path is empty.
type DfReq struct {
	Path string `msgpack:"path"`
}

// DfEntry is the usage of one mounted file system, in bytes.
type DfEntry struct {
	Mount      string `msgpack:"mount"`
	Source     string `msgpack:"source"`
	FSType     string `msgpack:"fstype"`
	Total      uint64 `msgpack:"total"`
	Used       uint64 `msgpack:"used"`
	Avail      uint64 `msgpack:"avail"`
	Inodes     uint64 `msgpack:"inodes"`
	InodesFree uint64 `msgpack:"inodes_free"`
}

// DfResp lists file system usage.
type DfResp struct {
	Entries []DfEntry `msgpack:"entries"`
}

// DmesgReq asks for the last N kernel log lines (≤ MaxListEntries).
type DmesgReq struct {
	N int `msgpack:"n"`
}

// LinesResp is a list of text lines.
type LinesResp struct {
	Lines []string `msgpack:"lines"`
}

// SysctlReq names one kernel parameter, dotted (net.ipv4.ip_forward) or as
// a path under /proc/sys; Value is what sysctl_set writes.
type SysctlReq struct {
	Name  string `msgpack:"name"`
	Value string `msgpack:"value"`
}

// SysctlResp is a parameter's value, without its trailing newline.
type SysctlResp struct {
	Value string `msgpack:"value"`
}

// SysctlLoadResp reports sysctl_load: how many settings were applied and
// the ones that failed, as "key: reason".
type SysctlLoadResp struct {
	Applied int      `msgpack:"applied"`
	Errors  []string `msgpack:"errors"`
}

// SvcReq asks systemd to act on Unit: Action is status, start, stop or
// restart.
type SvcReq struct {
	Unit   string `msgpack:"unit"`
	Action string `msgpack:"action"`
}

// SvcResp reports a unit: its state for status, the queued job's object
// path for start, stop and restart.
type SvcResp struct {
	Unit        string `msgpack:"unit"`
	Description string `msgpack:"description"`
	LoadState   string `msgpack:"load_state"`
	ActiveState string `msgpack:"active_state"`
	SubState    string `msgpack:"sub_state"`
	Job         string `msgpack:"job"`
}
