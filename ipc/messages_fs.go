package ipc

// Messages of the file operations 9–18 (see the table in PROTOCOL.md).
// Paths are absolute; the broker canonicalises them and rejects ".."
// before anything else, as for PathReq.

// ChmodReq sets the permission bits (07777) of Path.
type ChmodReq struct {
	Path   string `msgpack:"path"`
	Mode   uint32 `msgpack:"mode"`
	Follow bool   `msgpack:"follow"`
}

// ChownReq sets the owner and group of Path. User and Group are names or
// decimal ids; an empty one leaves that id unchanged. The broker resolves
// names from its own /etc/passwd and /etc/group.
type ChownReq struct {
	Path   string `msgpack:"path"`
	User   string `msgpack:"user"`
	Group  string `msgpack:"group"`
	Follow bool   `msgpack:"follow"`
}

// MoveReq renames Src to Dst, neither followed when it is a symlink.
type MoveReq struct {
	Src string `msgpack:"src"`
	Dst string `msgpack:"dst"`
}

// CopyReq copies the regular file Src to Dst. Without Force an existing
// Dst is an error; Preserve keeps the mode and modification time (and the
// owner when the broker may set it).
type CopyReq struct {
	Src      string `msgpack:"src"`
	Dst      string `msgpack:"dst"`
	Force    bool   `msgpack:"force"`
	Preserve bool   `msgpack:"preserve"`
}

// ReadlinkResp is a symlink's target text, unresolved.
type ReadlinkResp struct {
	Target string `msgpack:"target"`
}

// SymlinkReq makes Link a symlink to Target. Target is stored as text and
// never resolved by the broker; with Force an existing Link (which is
// never followed) is replaced atomically.
type SymlinkReq struct {
	Target string `msgpack:"target"`
	Link   string `msgpack:"link"`
	Force  bool   `msgpack:"force"`
}

// SetXattrReq sets extended attribute Name of Path to Value.
type SetXattrReq struct {
	Path  string `msgpack:"path"`
	Name  string `msgpack:"name"`
	Value []byte `msgpack:"value"`
}

// ExecuteReq runs the regular file Path in the broker (fexecve of the
// authorised descriptor). Env is the child's whole environment. User and
// Group are names or decimal ids; empty means the broker's unprivileged
// default.
type ExecuteReq struct {
	Path      string            `msgpack:"path"`
	Args      []string          `msgpack:"args"`
	Env       map[string]string `msgpack:"env"`
	User      string            `msgpack:"user"`
	Group     string            `msgpack:"group"`
	TimeoutMs int64             `msgpack:"timeout_ms"`
}

// ExecuteResp is the child's exit status and its capped output. ExitCode
// is -1 when the child was killed (timeout); Truncated says output was cut.
type ExecuteResp struct {
	ExitCode  int    `msgpack:"exit_code"`
	Stdout    []byte `msgpack:"stdout"`
	Stderr    []byte `msgpack:"stderr"`
	Truncated bool   `msgpack:"truncated"`
	TimedOut  bool   `msgpack:"timed_out"`
}

// WalkReq lists the tree under Path, breadth first in name order, never
// following symlinks nor crossing mounts. MaxDepth 0 means the broker's
// cap; 1 lists Path's own entries only. Skip leaves out that many entries
// of the walk, for fetching it in pages.
type WalkReq struct {
	Path     string `msgpack:"path"`
	MaxDepth int    `msgpack:"max_depth"`
	Skip     int    `msgpack:"skip"`
}

// WalkEntry is one object of a walk.
type WalkEntry struct {
	Path  string `msgpack:"path"`
	Kind  string `msgpack:"kind"`
	Size  int64  `msgpack:"size"`
	Depth int    `msgpack:"depth"`
}

// WalkResp holds one page of the entries the policy lets the principal
// stat. More says another page follows (ask again with Skip advanced);
// Truncated that the broker's entry or depth cap cut the walk short.
type WalkResp struct {
	Entries   []WalkEntry `msgpack:"entries"`
	More      bool        `msgpack:"more"`
	Truncated bool        `msgpack:"truncated"`
}
