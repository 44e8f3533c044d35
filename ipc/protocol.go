package ipc

import (
	"slices"
	"strconv"
)

// Version is the protocol version carried in the client hello and in the
// worker's Start message. Bump it whenever a message, a field or a cap
// changes; TestProtocolGolden fails until the golden file agrees.
//
// History:
//
//	1 — first version: hello/run on the client stream; start/result on the
//	    worker's stdio; stat, read, open, list, write, mkdir, remove, exists
//	    on the worker socketpair.
//	2 — the remaining file operations (9–18) and the process, network,
//	    system and systemd operations (100–401).
//	3 — Response.poll: the broker says it polls for the next request, and
//	    the worker may then poll for its reply.
//	4 — Start.exit_after_result: the worker exits once its result is
//	    written, for a broker that reaps it before answering.
const Version = 4

// Caps. Every length is checked against its cap before anything is
// allocated for it.
const (
	// MaxFrame caps one frame on a stream (client↔broker, and the worker's
	// stdin/stdout): scripts, args and results all fit well inside it.
	MaxFrame = 16 << 20
	// MaxPacket caps one SOCK_SEQPACKET message worker↔broker. It is small
	// enough to fit the default socket buffers of an unprivileged process;
	// larger payloads travel as file descriptors.
	MaxPacket = 128 << 10
	// MaxInline is the largest file body the broker returns inside a reply;
	// bigger files come back as a read-only descriptor.
	MaxInline = 64 << 10
	// MaxDepth caps msgpack nesting in every decoder, so hostile input can
	// never drive a recursive decoder into a Go stack overflow.
	MaxDepth = 32
	// MaxFDs is the most descriptors one broker→worker reply carries.
	MaxFDs = 1
	// MaxScript caps the script source a client may send.
	MaxScript = 1 << 20
)

// WorkerUsernsArg is rex-worker's one argument when the broker leaves the
// worker's user, mount and uts namespaces to the worker's entry point
// (cmd/rex-worker's rexEntry; amd64 only): see PROTOCOL.md, "Starting the
// worker".
const WorkerUsernsArg = "--userns"

// WorkerExitStart is rex-worker's exit code when reading its Start frame
// fails, as when its stdin closes first: it gets there only once locked
// down, which the broker's start-up probe of WorkerUsernsArg relies on.
const WorkerExitStart = 79

// WorkerExitUserns is rex-worker's exit code when it was started with
// WorkerUsernsArg and its entry point could not make the namespaces.
const WorkerExitUserns = 81

// MsgType identifies a message on a stream (client↔broker and worker stdio).
type MsgType uint8

// Stream messages. Direction is given as sender → receiver.
const (
	// MsgHello: client → broker, first frame of a connection (Hello).
	MsgHello MsgType = 1
	// MsgHelloAck: broker → client, the answer to a hello (HelloAck).
	MsgHelloAck MsgType = 2
	// MsgRun: client → broker, one script to run (RunRequest).
	MsgRun MsgType = 3
	// MsgResult: broker → client, the run's result (Result); last frame.
	MsgResult MsgType = 4
	// MsgError: broker → client, a refusal before or instead of a run (Error).
	MsgError MsgType = 5
	// MsgStart: broker → worker on the worker's stdin, what to run (Start).
	MsgStart MsgType = 6
	// MsgWorkerResult: worker → broker on the worker's stdout (WorkerResult).
	MsgWorkerResult MsgType = 7
)

// Op identifies a worker → broker request on the socketpair. Each op names
// its request and reply bodies; the broker dispatches through a table keyed
// by Op and answers an unknown op with CodeUnsupported.
type Op uint16

// Worker operations.
const (
	// OpStat: PathReq → FileInfo. file_system::stat.
	OpStat Op = 1
	// OpRead: ReadReq → ReadResp, small bodies inline, others as a read-only
	// fd. file_system::open (Dir, File) and read.
	OpRead Op = 2
	// OpOpen: OpenReq → FileInfo plus one fd with exactly the granted mode.
	OpOpen Op = 3
	// OpList: ListReq → ListResp. file_system::open and read on the Dir.
	OpList Op = 4
	// OpWrite: WriteReq → WriteResp. file_system::write (and create).
	OpWrite Op = 5
	// OpMkdir: MkdirReq → Empty. file_system::create.
	OpMkdir Op = 6
	// OpRemove: RemoveReq → Empty. file_system::delete.
	OpRemove Op = 7
	// OpExists: PathReq → ExistsResp. file_system::stat.
	OpExists Op = 8

	// Remaining file operations (messages_fs.go).
	OpChmod    Op = 9  // file_system::chmod
	OpChown    Op = 10 // file_system::chown
	OpMove     Op = 11 // file_system::move (+ create on the destination)
	OpCopy     Op = 12 // read on the source, create/write on the destination
	OpTouch    Op = 13 // create when missing, else write
	OpReadlink Op = 14 // file_system::read on the link
	OpSymlink  Op = 15 // file_system::create on the link
	OpSetXattr Op = 16 // file_system::set_x_attr
	OpExecute  Op = 17 // file_system::execute
	OpWalk     Op = 18 // listing a tree; entries the policy hides are left out

	// Process operations (messages_sys.go).
	OpProcList Op = 100 // process_system::list, per process
	OpProcKill Op = 101 // process_system::kill or interrupt, through a pidfd
	OpProcFDs  Op = 102 // process_system::list_fds
	OpProcLsof Op = 103 // process_system::list_fds, per process, filtered by path

	// Network operations (messages_sys.go).
	OpNetGet         Op = 200 // network::GET on network::url, every redirect hop
	OpNetConnect     Op = 201 // network::connect on network::url::"tcp://host:port"
	OpNetResolve     Op = 202 // sysinfo::resolve_hostname
	OpNetInterfaces  Op = 203 // sysinfo::list
	OpNetConnections Op = 204 // sysinfo::list

	// System operations (messages_sys.go).
	OpSysInfo      Op = 300 // sysinfo::list: uname, hostname, cpus, uptime, loadavg, meminfo
	OpSysDf        Op = 301 // sysinfo::list
	OpSysDmesg     Op = 302 // sysinfo::list
	OpSysctlGet    Op = 303 // file_system::read on /proc/sys/...
	OpSysctlSet    Op = 304 // file_system::write on /proc/sys/...
	OpSysctlLoad   Op = 305 // sysctl::load
	OpSvc          Op = 400 // systemd:: status/start/stop/restart on systemd::Service
	OpDaemonReload Op = 401 // systemd::daemon_reload
)

var opNames = map[Op]string{
	OpStat: "stat", OpRead: "read", OpOpen: "open", OpList: "list",
	OpWrite: "write", OpMkdir: "mkdir", OpRemove: "remove", OpExists: "exists",
	OpChmod: "chmod", OpChown: "chown", OpMove: "move", OpCopy: "copy", OpTouch: "touch",
	OpReadlink: "readlink", OpSymlink: "symlink", OpSetXattr: "setxattr", OpExecute: "execute",
	OpWalk:     "walk",
	OpProcList: "proc_list", OpProcKill: "proc_kill", OpProcFDs: "proc_fds", OpProcLsof: "proc_lsof",
	OpNetGet: "net_get", OpNetConnect: "net_connect", OpNetResolve: "net_resolve",
	OpNetInterfaces: "net_interfaces", OpNetConnections: "net_connections",
	OpSysInfo: "sys_info", OpSysDf: "sys_df", OpSysDmesg: "sys_dmesg", OpSysctlGet: "sysctl_get",
	OpSysctlSet: "sysctl_set", OpSysctlLoad: "sysctl_load", OpSvc: "svc", OpDaemonReload: "daemon_reload",
}

func (o Op) String() string {
	if n, ok := opNames[o]; ok {
		return n
	}
	return "op(" + strconv.Itoa(int(o)) + ")"
}

// Ops lists every defined op, in numeric order.
func Ops() []Op {
	ops := make([]Op, 0, len(opNames))
	for o := range opNames {
		ops = append(ops, o)
	}
	slices.Sort(ops)
	return ops
}
