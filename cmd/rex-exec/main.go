// Command rex-exec runs a Risor script under a Cedar policy, through the
// rex-broker daemon (--socket) or standalone (--policy), and prints the
// result. See DESIGN §1 and `rex-exec -h`.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rex-sh/rex/ipc"
)

const usage = `usage: rex-exec [flags] SCRIPT.risor|-
       rex-exec mcp [--socket PATH | --policy P] [--timeout D]   (MCP server on stdio)

Runs a Risor script with every system operation checked against a Cedar
policy, and prints the result (status, output, stdout, error, denials, ...).

Modes:
  --socket PATH   through the rex-broker daemon (default $REX_SOCKET, else /run/rex/rex.sock)
  --policy P      standalone: rex-exec plays the broker for this run, with your own
                  privileges, and still sandboxes the script (P is a .cedar file or a dir)

Environment (standalone): REX_AUDIT_LOG (audit JSON lines), REX_REDACTION_DICT,
  REX_DNS_SERVER=host:port (the only DNS server asked for net.* names).

Flags:
`

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

type options struct {
	socket, policy, output, argsFile, learnOut string
	timeout                                    time.Duration
	args, argsJSON                             stringList
	learn                                      bool
	// server: the run is one of an MCP server's, in a process that goes
	// on after it.
	server bool
	// engine is the standalone engine's state (engine.go); empty in the
	// client build.
	engine engineState
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(argv []string, stdin io.Reader, stdout, stderr io.Writer) int {
	// The worker the engine's entry point started, if a standalone run
	// did not take it.
	defer dropPrespawn()
	var o options
	fs := flag.NewFlagSet("rex-exec", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	fs.StringVar(&o.socket, "socket", "", "broker socket (default $REX_SOCKET, else /run/rex/rex.sock)")
	fs.StringVar(&o.policy, "policy", "", "standalone mode: policy file or directory")
	fs.Var(&o.args, "arg", "script argument NAME=VALUE (string; repeatable)")
	fs.Var(&o.argsJSON, "arg-json", "script argument NAME=JSON (repeatable)")
	fs.StringVar(&o.argsFile, "args-file", "", "JSON object of arguments (Rex's tagged form accepted)")
	fs.StringVar(&o.output, "output", "", "json, pretty-json or human (default human on a terminal, else json)")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "wall-clock limit of the run (the broker may cap it lower)")
	fs.BoolVar(&o.learn, "learn", false, "standalone only: allow and record every operation, then print the least policy")
	fs.StringVar(&o.learnOut, "learn-out", "", "with --learn: write the learned policy here instead of stderr")

	// Flags may come before or after the script name.
	var pos []string
	for {
		if err := fs.Parse(argv); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		argv = fs.Args()[1:]
	}
	if o.output == "" {
		o.output = "json"
		if f, ok := stdout.(*os.File); ok && isTerminal(f) {
			o.output = "human"
		}
	}
	if o.output != "json" && o.output != "pretty-json" && o.output != "human" {
		fmt.Fprintf(stderr, "rex-exec: --output must be json, pretty-json or human, not %q\n", o.output)
		return 2
	}
	engineProcs(len(pos) == 1 && pos[0] == "mcp")
	// Standalone mode plays the broker in this process: the client build
	// hands over to the engine build here, before anything is read.
	if o.policy != "" || o.learn {
		preloadPolicy()
		if code, handed := handOff(pos, stdout, stderr); handed {
			return code
		}
	}
	// A script file named mcp is still reachable as ./mcp.
	if len(pos) == 1 && pos[0] == "mcp" {
		return serveMCP(&o, stdin, stdout, stderr)
	}
	if len(pos) != 1 {
		fs.Usage()
		return 2
	}
	if o.timeout <= 0 {
		fmt.Fprintln(stderr, "rex-exec: --timeout must be positive")
		return 2
	}
	if o.learn {
		return learnRun(&o, pos[0], stdin, stdout, stderr)
	}

	res := execute(&o, pos[0], stdin)
	printResult(stdout, o.output, res)
	return ipc.ExitCode(res)
}

// errorResult is the result of a run that failed before or outside the
// broker, shaped like every other result.
func errorResult(errType, format string, args ...any) *ipc.Result {
	return &ipc.Result{Status: ipc.StatusError, Denials: []ipc.Denial{}, Logs: []ipc.LogLine{},
		Metrics: []ipc.Metric{}, Alarms: []ipc.Alarm{},
		Error: &ipc.ResultError{ErrorType: errType, Message: fmt.Sprintf(format, args...)}}
}

func validationError(format string, args ...any) *ipc.Result {
	return errorResult(ipc.ErrValidation, format, args...)
}

func execute(o *options, scriptPath string, stdin io.Reader) *ipc.Result {
	var script []byte
	var err error
	name := scriptPath
	if scriptPath == "-" {
		script, err = io.ReadAll(io.LimitReader(stdin, ipc.MaxScript+1))
		name = "stdin.risor"
	} else {
		script, err = readCapped(scriptPath, ipc.MaxScript+1)
		name = filepath.Base(scriptPath)
	}
	if err != nil {
		return validationError("cannot read script: %v", err)
	}
	if len(script) > ipc.MaxScript {
		return validationError("script is larger than %d bytes", ipc.MaxScript)
	}
	args, err := buildArgs(o)
	if err != nil {
		return validationError("%v", err)
	}

	if o.policy != "" {
		if o.socket != "" {
			return validationError("--policy (standalone) and --socket (daemon) exclude each other")
		}
		return standalone(o, script, name, args)
	}
	dropPrespawn()
	return remote(socketPath(o), &ipc.RunRequest{Script: script, ScriptName: name, Args: args, TimeoutMs: o.timeout.Milliseconds()})
}

// socketPath is the daemon's socket: --socket, else $REX_SOCKET, else the
// default.
func socketPath(o *options) string {
	if o.socket != "" {
		return o.socket
	}
	if s := os.Getenv("REX_SOCKET"); s != "" {
		return s
	}
	return "/run/rex/rex.sock"
}

// readCapped reads at most max bytes of the file at path with plain
// read(2) on a blocking descriptor, not through an os.File: os.Open would
// start the runtime's poller (an epoll instance, an eventfd and their
// registrations), which nothing else in the client uses.
func readCapped(path string, max int64) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	b, err := io.ReadAll(io.LimitReader(ipc.FDReader(fd), max))
	if err != nil {
		return nil, &os.PathError{Op: "read", Path: path, Err: err}
	}
	return b, nil
}

func communicationError(format string, args ...any) *ipc.Result {
	return errorResult(ipc.ErrCommunication, format, args...)
}

func remote(sock string, req *ipc.RunRequest) *ipc.Result {
	c, err := dial(sock, 5*time.Second)
	if err != nil {
		return communicationError("cannot reach rex-broker at %s: %v (is it running? use --policy for standalone mode)", sock, err)
	}
	defer c.Close()
	// Ctrl-C and SIGTERM end rex-exec the default way, killed by the
	// signal: its connection closes with it, which cancels the run in the
	// broker (which kills the worker and audits the run's end). Catching
	// them would cost a signal thread at every start, about a third of a
	// millisecond, for nothing the broker does not already do.
	// The run frame goes right behind the hello, in one write, without
	// waiting for the hello-ack: the broker reads frames in order, so a
	// refusal is still the next frame here (PROTOCOL.md, "Pipelining"),
	// and a run costs one round trip to the broker instead of two.
	var out bytes.Buffer
	if err := ipc.WriteFrame(&out, ipc.MsgHello, &ipc.Hello{Version: ipc.Version, Client: "rex-exec"}); err != nil {
		return communicationError("hello: %v", err)
	}
	if err := ipc.WriteFrame(&out, ipc.MsgRun, req); err != nil {
		return communicationError("send run: %v", err)
	}
	// A broker that refuses may close before reading all of it: its
	// refusal, already sent, says more than the broken pipe.
	_, werr := c.Write(out.Bytes())
	r := bufio.NewReader(c)
	var ack ipc.HelloAck
	if err := ipc.ReadFrameAs(r, ipc.MsgHelloAck, &ack); err != nil {
		return communicationError("broker refused: %v", err)
	}
	if werr != nil {
		return communicationError("send run: %v", werr)
	}
	var res ipc.Result
	if err := ipc.ReadFrameAs(r, ipc.MsgResult, &res); err != nil {
		var e *ipc.Error
		if errors.As(err, &e) && e.Code == ipc.CodeBusy {
			return errorResult(ipc.ErrResourceLimit, "%s", e.Message)
		}
		return communicationError("reading result: %v", err)
	}
	return &res
}

// dial connects to the broker's stream socket with plain blocking I/O: the
// client has one conversation to hold, and the runtime's poller would add
// threads and wake-ups to each of its steps. The connect, which waits while
// the broker's backlog is full, gives up after timeout (SO_SNDTIMEO bounds a
// blocking AF_UNIX connect).
func dial(path string, timeout time.Duration) (*os.File, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	tv := unix.NsecToTimeval(timeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, err
	}
	for {
		err = unix.Connect(fd, &unix.SockaddrUnix{Name: path})
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		unix.Close(fd)
		if err == unix.EAGAIN {
			err = fmt.Errorf("no answer within %v", timeout)
		}
		return nil, err
	}
	var none unix.Timeval
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &none); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), path), nil
}

// buildArgs merges --args-file, --arg and --arg-json (later wins) into one
// JSON object.
func buildArgs(o *options) ([]byte, error) {
	args := map[string]json.RawMessage{}
	if o.argsFile != "" {
		b, err := readCapped(o.argsFile, ipc.MaxFrame/2)
		if err != nil {
			return nil, fmt.Errorf("--args-file: %v", err)
		}
		if err := parseArgsFile(b, args); err != nil {
			return nil, fmt.Errorf("--args-file %s: %v", o.argsFile, err)
		}
	}
	for _, a := range o.args {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--arg %q: want NAME=VALUE", a)
		}
		b, _ := json.Marshal(v)
		args[k] = b
	}
	for _, a := range o.argsJSON {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--arg-json %q: want NAME=JSON", a)
		}
		if !json.Valid([]byte(v)) {
			return nil, fmt.Errorf("--arg-json %s: value is not valid JSON: %s", k, v)
		}
		args[k] = json.RawMessage(v)
	}
	return json.Marshal(args)
}

// parseArgsFile accepts a plain JSON object, or Rex's tagged form where
// every value is {"stringValue": ...}, {"longValue": ...}, and so on.
func parseArgsFile(b []byte, into map[string]json.RawMessage) error {
	var obj map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&obj); err != nil {
		return fmt.Errorf("want a JSON object: %v", err)
	}
	tagged := len(obj) > 0
	for _, v := range obj {
		if _, ok := untag(v); !ok {
			tagged = false
			break
		}
	}
	for k, v := range obj {
		if tagged {
			v, _ = untag(v)
		}
		into[k] = v
	}
	return nil
}

var rexTags = map[string]bool{
	"stringValue": true, "longValue": true, "intValue": true, "doubleValue": true,
	"booleanValue": true, "boolValue": true, "listValue": true, "mapValue": true,
}

// untag turns one Rex tagged value into plain JSON.
func untag(v json.RawMessage) (json.RawMessage, bool) {
	var m map[string]json.RawMessage
	if json.Unmarshal(v, &m) != nil || len(m) != 1 {
		return nil, false
	}
	for tag, inner := range m {
		if !rexTags[tag] {
			return nil, false
		}
		switch tag {
		case "listValue":
			var items []json.RawMessage
			if json.Unmarshal(inner, &items) != nil {
				return nil, false
			}
			out := make([]json.RawMessage, 0, len(items))
			for _, it := range items {
				u, ok := untag(it)
				if !ok {
					return nil, false
				}
				out = append(out, u)
			}
			b, _ := json.Marshal(out)
			return b, true
		case "mapValue":
			var items map[string]json.RawMessage
			if json.Unmarshal(inner, &items) != nil {
				return nil, false
			}
			out := map[string]json.RawMessage{}
			for k, it := range items {
				u, ok := untag(it)
				if !ok {
					return nil, false
				}
				out[k] = u
			}
			b, _ := json.Marshal(out)
			return b, true
		}
		return inner, true
	}
	return nil, false
}

func printResult(w io.Writer, format string, r *ipc.Result) {
	switch format {
	case "json":
		// As json.Marshal(r) writes it, without its reflection: see
		// Result.AppendJSON.
		b, _ := r.AppendJSON(nil)
		_, _ = w.Write(append(b, '\n'))
	case "pretty-json":
		b, _ := json.MarshalIndent(r, "", "  ")
		fmt.Fprintf(w, "%s\n", b)
	default:
		printHuman(w, r)
	}
}

func printHuman(w io.Writer, r *ipc.Result) {
	fmt.Fprintf(w, "status:   %s  (run %s, %d ms)\n", r.Status, r.RunID, r.DurationMs)
	if len(r.Output) > 0 {
		fmt.Fprintf(w, "output:   %s\n", r.Output)
	}
	if r.Stdout != "" {
		fmt.Fprintf(w, "stdout:\n%s", indent(r.Stdout))
	}
	if r.Error != nil {
		fmt.Fprintf(w, "error:    %s: %s\n", r.Error.ErrorType, r.Error.Message)
		if len(r.Error.PolicyIDs) > 0 {
			fmt.Fprintf(w, "policies: %s\n", strings.Join(r.Error.PolicyIDs, ", "))
		}
	}
	for _, d := range r.Denials {
		fmt.Fprintf(w, "denied:   %s on %s", d.Action, d.Resource)
		if len(d.PolicyIDs) > 0 {
			fmt.Fprintf(w, " (by %s)", strings.Join(d.PolicyIDs, ", "))
		}
		fmt.Fprintln(w)
	}
	for _, l := range r.Logs {
		fmt.Fprintf(w, "log %-5s %s\n", l.Level, l.Message)
	}
}

func indent(s string) string {
	if !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	return "  " + strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n  ") + "\n"
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
