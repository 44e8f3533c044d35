package ipc

import (
	"encoding/json"
)

// ---- client ↔ broker stream ------------------------------------------------

// Hello is the first frame a client sends. The broker answers HelloAck, or
// Error with CodeVersion when it does not speak Version.
type Hello struct {
	Version int    `msgpack:"version"`
	Client  string `msgpack:"client"`
}

// HelloAck accepts a hello. Principal is the identity the broker took from
// SO_PEERCRED, echoed so the client can show who it runs as.
type HelloAck struct {
	Version   int    `msgpack:"version"`
	Broker    string `msgpack:"broker"`
	Principal string `msgpack:"principal"`
}

// RunRequest asks the broker to run one script. The script and its args are
// bytes: the broker never opens a path the client names.
type RunRequest struct {
	Script     []byte `msgpack:"script"`
	ScriptName string `msgpack:"script_name"`
	// Args is a JSON object (name → value), already in plain form.
	Args      []byte `msgpack:"args"`
	TimeoutMs int64  `msgpack:"timeout_ms"`
}

// ErrorMsg refuses a hello or a run before any script ran.
type ErrorMsg struct {
	Code    Code   `msgpack:"code"`
	Message string `msgpack:"message"`
}

// ---- broker ↔ worker stdio -------------------------------------------------

// Start is the single frame the broker writes to a worker's stdin.
type Start struct {
	Version    int    `msgpack:"version"`
	RunID      string `msgpack:"run_id"`
	Script     []byte `msgpack:"script"`
	ScriptName string `msgpack:"script_name"`
	Args       []byte `msgpack:"args"`
	MaxStdout  int    `msgpack:"max_stdout"`
	// ExitAfterResult has the worker exit as soon as it has written its
	// result, rather than wait for the broker to hang up: its broker reaps
	// it before answering anyway (standalone rex-exec), so its teardown
	// may start at once.
	ExitAfterResult bool `msgpack:"exit_after_result"`
}

// WorkerResult is the single frame a worker writes to its stdout when the
// script ends. The broker trusts none of it for security decisions: denials,
// the audit trail and the run's status on kill or timeout are the broker's.
type WorkerResult struct {
	Output          json.RawMessage `msgpack:"output"`
	Stdout          string          `msgpack:"stdout"`
	StdoutTruncated bool            `msgpack:"stdout_truncated"`
	// ErrType is empty on success, else one of the ErrType constants.
	ErrType    string    `msgpack:"err_type"`
	ErrMessage string    `msgpack:"err_message"`
	Denial     *Denial   `msgpack:"denial"`
	Logs       []LogLine `msgpack:"logs"`
	Metrics    []Metric  `msgpack:"metrics"`
	Alarms     []Alarm   `msgpack:"alarms"`
}

// ---- worker ↔ broker socketpair -------------------------------------------

// Request is one packet from the worker. Body is the op's request struct,
// decoded only after the op has been looked up in the dispatch table.
type Request struct {
	ID   uint32 `msgpack:"id"`
	Op   Op     `msgpack:"op"`
	Body []byte `msgpack:"body"`
}

// Response answers the Request with the same ID. FDs says how many
// descriptors ride along in SCM_RIGHTS (0 or 1). Poll says the broker polls
// for the worker's next request (it serves this run alone, so the machine
// has a core for each side): the worker may then poll for its next reply
// too (Client.PollWithBroker). It is a hint about load, never a grant.
type Response struct {
	ID      uint32  `msgpack:"id"`
	Code    Code    `msgpack:"code"`
	Message string  `msgpack:"message"`
	Denial  *Denial `msgpack:"denial"`
	Body    []byte  `msgpack:"body"`
	FDs     int     `msgpack:"fds"`
	Poll    bool    `msgpack:"poll"`
}

// PathReq names one object. Paths are absolute; the broker canonicalises
// them and rejects ".." before anything else.
type PathReq struct {
	Path   string `msgpack:"path"`
	Follow bool   `msgpack:"follow"`
}

// ReadReq asks for a file's contents.
type ReadReq struct {
	Path   string `msgpack:"path"`
	Follow bool   `msgpack:"follow"`
}

// ReadResp carries the body inline (Data) or, when FD is set, as a read-only
// descriptor positioned at offset 0. Size is the file size at fstat time.
type ReadResp struct {
	Data []byte `msgpack:"data"`
	Size int64  `msgpack:"size"`
	FD   bool   `msgpack:"fd"`
}

// OpenReq asks for a descriptor on a regular file with exactly these modes.
type OpenReq struct {
	Path   string `msgpack:"path"`
	Write  bool   `msgpack:"write"`
	Create bool   `msgpack:"create"`
	Append bool   `msgpack:"append"`
	Follow bool   `msgpack:"follow"`
}

// ListReq asks for a directory listing.
type ListReq struct {
	Path string `msgpack:"path"`
	All  bool   `msgpack:"all"`
}

// ListResp lists the entries the policy lets the principal see.
type ListResp struct {
	Entries []FileInfo `msgpack:"entries"`
}

// WriteReq writes Data to Path: an atomic replace, or an append.
type WriteReq struct {
	Path   string `msgpack:"path"`
	Data   []byte `msgpack:"data"`
	Append bool   `msgpack:"append"`
	Mode   uint32 `msgpack:"mode"`
}

// WriteResp says how many bytes were written.
type WriteResp struct {
	N int64 `msgpack:"n"`
}

// MkdirReq creates a directory (and missing parents with Parents).
type MkdirReq struct {
	Path    string `msgpack:"path"`
	Parents bool   `msgpack:"parents"`
	Mode    uint32 `msgpack:"mode"`
}

// RemoveReq deletes an object (a tree with Recursive; no error for a
// missing object with Force).
type RemoveReq struct {
	Path      string `msgpack:"path"`
	Recursive bool   `msgpack:"recursive"`
	Force     bool   `msgpack:"force"`
}

// ExistsResp answers OpExists.
type ExistsResp struct {
	Exists bool `msgpack:"exists"`
}

// Empty is the body of replies that carry nothing.
type Empty struct{}

// FileInfo describes one object, from fstat of the opened object.
type FileInfo struct {
	Name   string `msgpack:"name"`
	Path   string `msgpack:"path"`
	Kind   string `msgpack:"kind"` // file, dir, symlink, fifo, socket, device
	Size   int64  `msgpack:"size"`
	Mode   uint32 `msgpack:"mode"` // permission bits, 07777
	UID    uint32 `msgpack:"uid"`
	GID    uint32 `msgpack:"gid"`
	Owner  string `msgpack:"owner"`
	Group  string `msgpack:"group"`
	MTime  string `msgpack:"mtime"` // RFC 3339
	Nlink  uint64 `msgpack:"nlink"`
	Target string `msgpack:"target"` // symlinks only
}
