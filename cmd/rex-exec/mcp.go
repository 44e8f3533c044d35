package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/rex-sh/rex/ipc"
)

// The MCP server speaks JSON-RPC 2.0 over stdio, one message per line
// (the stdio transport of the Model Context Protocol). It exposes one tool,
// run_risor_script, that runs a script exactly as `rex-exec` would (through
// the daemon, or standalone with --policy) and returns DESIGN §2's result
// JSON. Nothing but protocol messages is written to stdout; diagnostics go
// to stderr.

// mcpVersions are the protocol revisions this server speaks, oldest first;
// the last is what a client asking for anything else is offered. The tool
// surface used here (initialize, tools/list, tools/call, ping) is the same
// in all of them.
var mcpVersions = []string{"2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"}

const (
	mcpToolName = "run_risor_script"
	// mcpMaxLine bounds one incoming message: a maximal script, JSON-escaped,
	// plus arguments.
	mcpMaxLine = 2*ipc.MaxScript + ipc.MaxFrame
	// mcpMaxTimeout caps timeout_seconds; the broker may cap it lower.
	mcpMaxTimeout = time.Hour
	// mcpMaxCalls bounds the runs in flight at once.
	mcpMaxCalls = 4
)

// JSON-RPC 2.0 error codes.
const (
	rpcParseError     = -32700
	rpcInvalidRequest = -32600
	rpcMethodNotFound = -32601
	rpcInvalidParams  = -32602
)

type rpcMessage struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id,omitempty"`
	Method  string          `json:"method,omitempty"`
	Params  json.RawMessage `json:"params,omitempty"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   json.RawMessage `json:"error,omitempty"`
}

type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

type rpcResponse struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  any             `json:"result,omitempty"`
	Error   *rpcError       `json:"error,omitempty"`
}

type mcpServer struct {
	opts   options
	stderr io.Writer

	mu  sync.Mutex // serialises writes to out
	out io.Writer

	calls sync.WaitGroup
	slots chan struct{}
}

func serveMCP(o *options, stdin io.Reader, stdout, stderr io.Writer) int {
	dropPrespawn()
	if o.learn {
		fmt.Fprintln(stderr, "rex-exec: mcp does not learn: use --learn on a script")
		return 2
	}
	if o.policy != "" && o.socket != "" {
		fmt.Fprintln(stderr, "rex-exec: --policy (standalone) and --socket (daemon) exclude each other")
		return 2
	}
	s := &mcpServer{opts: *o, stderr: stderr, out: stdout, slots: make(chan struct{}, mcpMaxCalls)}
	r := bufio.NewReaderSize(stdin, 64<<10)
	for {
		line, err := readLine(r, mcpMaxLine)
		if errors.Is(err, errLineTooLong) {
			s.fail(nil, rpcInvalidRequest, fmt.Sprintf("message longer than %d bytes", mcpMaxLine))
			continue
		}
		if len(bytes.TrimSpace(line)) > 0 {
			s.handle(line)
		}
		if err != nil {
			break
		}
	}
	// The client closed stdin: let the runs in flight finish (each is
	// bounded by its timeout) so that their workers are not left behind.
	s.calls.Wait()
	return 0
}

var errLineTooLong = errors.New("line too long")

// readLine returns the next line without its newline. A line longer than
// max is consumed and reported as errLineTooLong, so that one oversized
// message costs the client an error, not the session.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	tooLong := false
	for {
		chunk, err := r.ReadSlice('\n')
		if !tooLong {
			if len(line)+len(chunk) > max+1 {
				tooLong, line = true, nil
			} else {
				line = append(line, chunk...)
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if tooLong {
			if err != nil {
				return nil, err
			}
			return nil, errLineTooLong
		}
		return bytes.TrimSuffix(line, []byte("\n")), err
	}
}

func (s *mcpServer) write(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		fmt.Fprintf(s.stderr, "rex-exec mcp: encoding a response: %v\n", err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, _ = s.out.Write(append(b, '\n'))
}

func (s *mcpServer) reply(id json.RawMessage, result any) {
	s.write(rpcResponse{JSONRPC: "2.0", ID: id, Result: result})
}

// fail answers with a JSON-RPC error; id is null when the request's id
// could not be read.
func (s *mcpServer) fail(id json.RawMessage, code int, msg string) {
	if len(id) == 0 {
		id = json.RawMessage("null")
	}
	s.write(rpcResponse{JSONRPC: "2.0", ID: id, Error: &rpcError{Code: code, Message: msg}})
}

func (s *mcpServer) handle(line []byte) {
	if t := bytes.TrimSpace(line); len(t) > 0 && t[0] == '[' {
		s.fail(nil, rpcInvalidRequest, "batches are not supported: send one message per line")
		return
	}
	var m rpcMessage
	if err := json.Unmarshal(line, &m); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) || !json.Valid(line) {
			s.fail(nil, rpcParseError, "parse error: "+err.Error())
		} else {
			s.fail(nil, rpcInvalidRequest, "invalid request: "+err.Error())
		}
		return
	}
	id := m.ID
	if !validID(id) {
		s.fail(nil, rpcInvalidRequest, "invalid request: id must be a string or a number")
		return
	}
	if m.JSONRPC != "2.0" {
		s.fail(id, rpcInvalidRequest, `invalid request: jsonrpc must be "2.0"`)
		return
	}
	if m.Method == "" {
		if m.Result != nil || m.Error != nil {
			return // a response to a request we never send; nothing to do
		}
		s.fail(id, rpcInvalidRequest, "invalid request: no method")
		return
	}
	if id == nil {
		// Notifications (initialized, cancelled, ...) need no answer, and an
		// unknown one is ignored, as JSON-RPC says.
		return
	}
	switch m.Method {
	case "initialize":
		s.initialize(id, m.Params)
	case "ping":
		s.reply(id, struct{}{})
	case "tools/list":
		s.reply(id, map[string]any{"tools": []any{toolDescription}})
	case "tools/call":
		s.toolsCall(id, m.Params)
	default:
		s.fail(id, rpcMethodNotFound, "method not found: "+m.Method)
	}
}

func validID(id json.RawMessage) bool {
	if id == nil {
		return true
	}
	var v any
	if json.Unmarshal(id, &v) != nil {
		return false
	}
	switch v.(type) {
	case string, float64:
		return true
	}
	return false
}

func (s *mcpServer) initialize(id json.RawMessage, params json.RawMessage) {
	var p struct {
		ProtocolVersion string `json:"protocolVersion"`
	}
	if err := json.Unmarshal(orEmpty(params), &p); err != nil || p.ProtocolVersion == "" {
		s.fail(id, rpcInvalidParams, "initialize: params.protocolVersion (string) is required")
		return
	}
	// MCP lifecycle: answer the client's version when we speak it, else the
	// latest we speak, and let the client decide whether to go on.
	v := mcpVersions[len(mcpVersions)-1]
	if slices.Contains(mcpVersions, p.ProtocolVersion) {
		v = p.ProtocolVersion
	}
	s.reply(id, map[string]any{
		"protocolVersion": v,
		"capabilities":    map[string]any{"tools": map[string]any{"listChanged": false}},
		"serverInfo":      map[string]any{"name": "rex", "version": fmt.Sprintf("protocol-%d", ipc.Version)},
		"instructions": "run_risor_script runs a Risor script on this host; every file, process, network and " +
			"system operation it attempts is checked against a Cedar policy. A denied operation fails with " +
			"\"Permission denied: ...\" naming the action and resource; catch it with try(fn, fallback) " +
			"or ask the operator to extend the policy.",
	})
}

var toolDescription = map[string]any{
	"name":  mcpToolName,
	"title": "Run a Risor script under a Cedar policy",
	"description": "Runs a Risor script in rex's sandbox. The script reaches the host only through the fs, proc, net, " +
		"sys and svc modules, and each operation is allowed or denied by the operator's Cedar policy. " +
		"Arguments are in the global map `args`; the script's last expression is the output. " +
		"The result is JSON: status (SUCCESS or ERROR), output, stdout, error {error_type, message, action, resource, policy_ids}, " +
		"denials, logs, metrics, alarms, run_id, duration_ms.",
	"inputSchema": map[string]any{
		"type": "object",
		"properties": map[string]any{
			"script":          map[string]any{"type": "string", "description": "Risor source code"},
			"args":            map[string]any{"type": "object", "description": "values the script sees in the global map args"},
			"timeout_seconds": map[string]any{"type": "number", "description": "wall-clock limit of the run (default 30)", "exclusiveMinimum": 0},
		},
		"required":             []string{"script"},
		"additionalProperties": false,
	},
}

func orEmpty(b json.RawMessage) json.RawMessage {
	if len(b) == 0 || string(b) == "null" {
		return json.RawMessage("{}")
	}
	return b
}

type callParams struct {
	Name      string          `json:"name"`
	Arguments json.RawMessage `json:"arguments"`
}

type toolArgs struct {
	Script  *string         `json:"script"`
	Args    json.RawMessage `json:"args"`
	Timeout *float64        `json:"timeout_seconds"`
}

func (s *mcpServer) toolsCall(id json.RawMessage, params json.RawMessage) {
	var p callParams
	if err := json.Unmarshal(orEmpty(params), &p); err != nil {
		s.fail(id, rpcInvalidParams, "tools/call: "+err.Error())
		return
	}
	if p.Name != mcpToolName {
		s.fail(id, rpcInvalidParams, fmt.Sprintf("tools/call: unknown tool %q (the tool is %s)", p.Name, mcpToolName))
		return
	}
	var a toolArgs
	dec := json.NewDecoder(bytes.NewReader(orEmpty(p.Arguments)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		s.fail(id, rpcInvalidParams, "tools/call arguments: "+err.Error())
		return
	}
	if a.Script == nil {
		s.fail(id, rpcInvalidParams, "tools/call arguments: script (string) is required")
		return
	}
	args := []byte("{}")
	if len(a.Args) > 0 && string(a.Args) != "null" {
		var obj map[string]json.RawMessage
		if json.Unmarshal(a.Args, &obj) != nil {
			s.fail(id, rpcInvalidParams, "tools/call arguments: args must be an object")
			return
		}
		args = a.Args
	}
	timeout := s.opts.timeout
	if a.Timeout != nil {
		t := *a.Timeout
		// Compared as floats: converting a huge value to a Duration first
		// would overflow.
		if !(t > 0) || t > mcpMaxTimeout.Seconds() {
			s.fail(id, rpcInvalidParams, fmt.Sprintf("tools/call arguments: timeout_seconds must be in (0, %d]", int(mcpMaxTimeout.Seconds())))
			return
		}
		timeout = time.Duration(t * float64(time.Second))
	}
	script := []byte(*a.Script)
	// Runs go on in the background so that pings and other calls are
	// answered meanwhile; a slot bounds how many run at once.
	s.calls.Add(1)
	go func() {
		defer s.calls.Done()
		s.slots <- struct{}{}
		defer func() { <-s.slots }()
		s.reply(id, toolResult(s.runScript(script, args, timeout)))
	}()
}

func (s *mcpServer) runScript(script, args []byte, timeout time.Duration) *ipc.Result {
	if len(script) > ipc.MaxScript {
		return validationError("script is larger than %d bytes", ipc.MaxScript)
	}
	o := s.opts
	o.timeout = timeout
	o.server = true
	const name = "mcp.risor"
	if o.policy != "" {
		return standalone(&o, script, name, args)
	}
	return remote(socketPath(&o), &ipc.RunRequest{Script: script, ScriptName: name, Args: args, TimeoutMs: timeout.Milliseconds()})
}

// toolResult is the result JSON as the tool's text content, and as
// structured content for clients that read it. A run that ended in ERROR,
// a denial included, is a tool error the model can read and act on, not a
// protocol error.
func toolResult(res *ipc.Result) map[string]any {
	b, err := json.Marshal(res)
	if err != nil {
		b, _ = json.Marshal(errorResult(ipc.ErrInternal, "encoding the result: %v", err))
	}
	return map[string]any{
		"content":           []any{map[string]any{"type": "text", "text": string(b)}},
		"structuredContent": json.RawMessage(b),
		"isError":           res.Status != ipc.StatusSuccess,
	}
}
