package ipc

import "strconv"

// Version is the protocol version carried in the client hello and in the
// worker's Start message. Bump it whenever a message, a field or a cap
// changes; TestProtocolGolden fails until the golden file agrees.
//
// History:
//
//	1 — first version: hello/run on the client stream; start/result on the
//	    worker's stdio; stat, read, open, list, write, mkdir, remove, exists
//	    on the worker socketpair.
const Version = 1

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
)

var opNames = map[Op]string{
	OpStat: "stat", OpRead: "read", OpOpen: "open", OpList: "list",
	OpWrite: "write", OpMkdir: "mkdir", OpRemove: "remove", OpExists: "exists",
}

func (o Op) String() string {
	if n, ok := opNames[o]; ok {
		return n
	}
	return "op(" + strconv.Itoa(int(o)) + ")"
}

// Ops lists every defined op, in numeric order.
func Ops() []Op {
	return []Op{OpStat, OpRead, OpOpen, OpList, OpWrite, OpMkdir, OpRemove, OpExists}
}
