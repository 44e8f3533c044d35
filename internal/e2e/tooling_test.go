package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rex-sh/rex/internal/testutil"
	"github.com/rex-sh/rex/ipc"
)

// Learn mode end to end: a run under a policy that allows nothing learns
// the least policy; the same script then succeeds under it, and the script
// with one operation more is denied on exactly that operation.
func TestLearnThenRerunThenOneMoreDenied(t *testing.T) {
	requireSandbox(t)
	f := newFixture(t)
	dir := t.TempDir()
	nothing := filepath.Join(dir, "nothing.cedar")
	must(t, os.WriteFile(nothing, []byte("// allows nothing\n"), 0o644))
	learned := filepath.Join(dir, "learned.cedar")
	out := f.data + "/out/report.txt"
	script := fmt.Sprintf(`
fs.write(%[1]q, "report\n")
{"hello": fs.cat(%[2]q), "report": fs.stat(%[1]q).size}`, out, f.data+"/hello.txt")

	// Without --learn the policy denies the first operation.
	o := rexExec(t, script, nil, "--policy", nothing, "--output", "json")
	wantStatus(t, o, ipc.StatusError, ipc.ErrAccessDenied, 3)

	o = rexExec(t, script, nil, "--policy", nothing, "--learn", "--learn-out", learned, "--output", "json")
	wantStatus(t, o, ipc.StatusSuccess, "", 0)
	pol, err := os.ReadFile(learned)
	must(t, err)
	text := string(pol)
	if !strings.HasPrefix(text, "// Learned by rex-exec --learn from stdin.risor on ") {
		t.Errorf("learned policy does not name its script:\n%s", text)
	}
	// create+write of the report, open dir+open+read of hello.txt, stat of
	// the report: six permits, one per action and resource, each with an id.
	if n, ids := strings.Count(text, "permit("), strings.Count(text, "@id("); n != 6 || ids != n {
		t.Errorf("%d permits and %d ids, want 6 each:\n%s", n, ids, text)
	}
	for _, want := range []string{
		`action == file_system::Action::"create",` + "\n" + `    resource == file_system::File::"` + out + `"`,
		`action == file_system::Action::"open",` + "\n" + `    resource == file_system::Dir::"` + f.data + `"`,
		`action == file_system::Action::"read",` + "\n" + `    resource == file_system::File::"` + f.data + `/hello.txt"`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("learned policy lacks %q:\n%s", want, text)
		}
	}
	validate := exec.Command(filepath.Join(testutil.Binaries(t), "rex-policy"), "validate", learned)
	if b, err := validate.CombinedOutput(); err != nil {
		t.Fatalf("learned policy does not validate: %v\n%s", err, b)
	}

	must(t, os.Remove(out))
	o = rexExec(t, script, nil, "--policy", learned, "--output", "json")
	wantStatus(t, o, ipc.StatusSuccess, "", 0)
	if string(o.res.Output) != `{"hello":"hello world\n","report":7}` {
		t.Errorf("rerun output = %s", o.res.Output)
	}

	// One operation more: a second file in the same directory.
	o = rexExec(t, script+"\nfs.cat("+fmt.Sprintf("%q", f.data+"/secret")+")", nil, "--policy", learned, "--output", "json")
	wantStatus(t, o, ipc.StatusError, ipc.ErrAccessDenied, 3)
	if e := o.res.Error; e.Action != `file_system::Action::"open"` || e.Resource != `file_system::File::"`+f.secret+`"` {
		t.Errorf("denied %s on %s, want open on the secret", e.Action, e.Resource)
	}
	if len(o.res.Denials) != 1 {
		t.Errorf("denials = %+v, want only the extra operation", o.res.Denials)
	}

	// The daemon never runs scripts unchecked.
	o2 := exec.Command(filepath.Join(testutil.Binaries(t), "rex-exec"), "--socket", "/nonexistent", "--learn", "-")
	o2.Stdin = strings.NewReader("1")
	b, err := o2.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(b), "--learn needs standalone mode") {
		t.Errorf("--learn with --socket: %v\n%s", err, b)
	}
}

// mcpClient drives `rex-exec mcp` over its stdio, one JSON-RPC message per
// line, as an agent framework does.
type mcpClient struct {
	t     *testing.T
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
}

func startMCP(t *testing.T, args ...string) *mcpClient {
	t.Helper()
	cmd := exec.Command(filepath.Join(testutil.Binaries(t), "rex-exec"), append([]string{"mcp"}, args...)...)
	in, err := cmd.StdinPipe()
	must(t, err)
	out, err := cmd.StdoutPipe()
	must(t, err)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	must(t, cmd.Start())
	c := &mcpClient{t: t, cmd: cmd, in: in, lines: make(chan string, 16)}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 4<<20)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
	}()
	t.Cleanup(func() {
		in.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("mcp server exited with %v\n%s", err, stderr.String())
			}
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("mcp server did not exit when stdin closed")
		}
	})
	return c
}

// call sends one raw line and returns the next response.
func (c *mcpClient) call(line string) map[string]any {
	c.t.Helper()
	if _, err := io.WriteString(c.in, line+"\n"); err != nil {
		c.t.Fatalf("write to mcp server: %v", err)
	}
	select {
	case l, ok := <-c.lines:
		if !ok {
			c.t.Fatalf("mcp server closed stdout after %s", line)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			c.t.Fatalf("response is not JSON: %q", l)
		}
		if m["jsonrpc"] != "2.0" {
			c.t.Errorf("response without jsonrpc 2.0: %s", l)
		}
		return m
	case <-time.After(20 * time.Second):
		c.t.Fatalf("no response to %s", line)
	}
	return nil
}

func (c *mcpClient) request(id int, method string, params any) map[string]any {
	c.t.Helper()
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "method": method, "params": params})
	m := c.call(string(b))
	if m["id"] != float64(id) {
		c.t.Fatalf("response id %v, want %d: %v", m["id"], id, m)
	}
	return m
}

func rpcErrorCode(t *testing.T, m map[string]any) float64 {
	t.Helper()
	e, ok := m["error"].(map[string]any)
	if !ok {
		t.Fatalf("want an error, got %v", m)
	}
	return e["code"].(float64)
}

// toolCall runs the tool and returns isError and the result JSON of the
// text content.
func (c *mcpClient) toolCall(id int, arguments map[string]any) (bool, ipc.Result) {
	c.t.Helper()
	m := c.request(id, "tools/call", map[string]any{"name": "run_risor_script", "arguments": arguments})
	r, ok := m["result"].(map[string]any)
	if !ok {
		c.t.Fatalf("tools/call: %v", m)
	}
	content := r["content"].([]any)
	item := content[0].(map[string]any)
	if len(content) != 1 || item["type"] != "text" {
		c.t.Fatalf("content = %v", content)
	}
	var res ipc.Result
	if err := json.Unmarshal([]byte(item["text"].(string)), &res); err != nil {
		c.t.Fatalf("tool text is not the result JSON: %v", item["text"])
	}
	return r["isError"] == true, res
}

func TestMCPSession(t *testing.T) {
	requireSandbox(t)
	f := newFixture(t)
	c := startMCP(t, "--policy", f.policy)

	m := c.request(1, "initialize", map[string]any{"protocolVersion": "2025-06-18", "capabilities": map[string]any{},
		"clientInfo": map[string]any{"name": "e2e", "version": "1"}})
	res := m["result"].(map[string]any)
	if res["protocolVersion"] != "2025-06-18" || res["capabilities"].(map[string]any)["tools"] == nil ||
		res["serverInfo"].(map[string]any)["name"] != "rex" {
		t.Errorf("initialize = %v", res)
	}
	// A notification gets no answer: the next line answers the next request.
	c.in.Write([]byte(`{"jsonrpc":"2.0","method":"notifications/initialized"}` + "\n"))
	if v := c.request(2, "initialize", map[string]any{"protocolVersion": "1999-01-01"})["result"].(map[string]any)["protocolVersion"]; v != "2025-11-25" {
		t.Errorf("unknown version answered with %v, want the latest", v)
	}

	tools := c.request(3, "tools/list", nil)["result"].(map[string]any)["tools"].([]any)
	tool := tools[0].(map[string]any)
	schema := tool["inputSchema"].(map[string]any)
	props := schema["properties"].(map[string]any)
	if len(tools) != 1 || tool["name"] != "run_risor_script" || fmt.Sprint(schema["required"]) != "[script]" ||
		props["script"] == nil || props["args"] == nil || props["timeout_seconds"] == nil {
		t.Errorf("tools/list = %v", tools)
	}

	isErr, r := c.toolCall(4, map[string]any{"script": `fs.cat(args.path)`, "args": map[string]any{"path": f.data + "/hello.txt"}})
	if isErr || r.Status != ipc.StatusSuccess || string(r.Output) != `"hello world\n"` {
		t.Errorf("allowed call: isError %v, result %+v", isErr, r)
	}
	isErr, r = c.toolCall(5, map[string]any{"script": fmt.Sprintf(`fs.cat(%q)`, f.secret)})
	if !isErr || r.Error == nil || r.Error.ErrorType != ipc.ErrAccessDenied ||
		!strings.HasPrefix(r.Error.Message, "Permission denied: ") || !strings.Contains(r.Error.Message, f.secret) ||
		!slices.Equal(r.Error.PolicyIDs, []string{"no-secret"}) {
		t.Errorf("denied call: isError %v, result %+v", isErr, r.Error)
	}
	isErr, r = c.toolCall(6, map[string]any{"script": `for { }`, "timeout_seconds": 0.5})
	if !isErr || r.Error == nil || r.Error.ErrorType != ipc.ErrTimeout {
		t.Errorf("timed-out call: isError %v, result %+v", isErr, r.Error)
	}

	// Malformed messages get JSON-RPC errors and the server keeps serving.
	if m := c.call(`{"jsonrpc":"2.0","id":7,"method":`); rpcErrorCode(t, m) != -32700 || m["id"] != nil {
		t.Errorf("parse error: %v", m)
	}
	if m := c.call(`{"jsonrpc":"1.0","id":8,"method":"ping"}`); rpcErrorCode(t, m) != -32600 || m["id"] != float64(8) {
		t.Errorf("wrong jsonrpc version: %v", m)
	}
	if m := c.call(`[{"jsonrpc":"2.0","id":9,"method":"ping"}]`); rpcErrorCode(t, m) != -32600 {
		t.Errorf("batch: %v", m)
	}
	if code := rpcErrorCode(t, c.request(10, "resources/list", nil)); code != -32601 {
		t.Errorf("unknown method: code %v", code)
	}
	if code := rpcErrorCode(t, c.request(11, "tools/call", map[string]any{"name": "run_risor_script", "arguments": map[string]any{"args": map[string]any{}}})); code != -32602 {
		t.Errorf("missing script: code %v", code)
	}
	if code := rpcErrorCode(t, c.request(12, "tools/call", map[string]any{"name": "rm_rf"})); code != -32602 {
		t.Errorf("unknown tool: code %v", code)
	}
	if m := c.request(13, "ping", nil); m["result"] == nil {
		t.Errorf("ping after errors: %v", m)
	}
	isErr, r = c.toolCall(14, map[string]any{"script": `1 + 1`})
	if isErr || string(r.Output) != "2" {
		t.Errorf("call after errors: %v %+v", isErr, r)
	}
}

// The MCP server runs scripts through the daemon with --socket.
func TestMCPThroughDaemon(t *testing.T) {
	requireSandbox(t)
	f := newFixture(t)
	d := startDaemon(t, policyDir(t, f))
	c := startMCP(t, "--socket", d.socket)
	c.request(1, "initialize", map[string]any{"protocolVersion": "2025-03-26"})
	isErr, r := c.toolCall(2, map[string]any{"script": fmt.Sprintf(`fs.cat(%q)`, f.data+"/hello.txt")})
	if isErr || string(r.Output) != `"hello world\n"` {
		t.Errorf("call through the daemon: %v %+v", isErr, r)
	}
	d.alive(t)
}

// compatPolicy is a Rex-compatible policy of policies/rex-compat with its
// example paths moved under root.
func compatPolicy(t *testing.T, dir, name string, moves ...string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), dir, name))
	must(t, err)
	text := strings.NewReplacer(moves...).Replace(string(b))
	p := filepath.Join(t.TempDir(), name)
	must(t, os.WriteFile(p, []byte(text), 0o644))
	return p
}

type compatCase struct {
	name, script string
	// deniedAction and deniedResource are empty for a run that succeeds.
	deniedAction, deniedResource string
	policyIDs                    []string
}

func runCompat(t *testing.T, policy string, cases []compatCase) {
	t.Helper()
	for _, c := range cases {
		o := rexExec(t, c.script, nil, "--policy", policy, "--output", "json")
		if c.deniedAction == "" {
			if o.res.Status != ipc.StatusSuccess {
				t.Errorf("%s: %s\n%s", c.name, o.raw, o.err)
			}
			continue
		}
		if o.code != 3 || o.res.Error == nil || o.res.Error.Action != `file_system::Action::"`+c.deniedAction+`"` ||
			o.res.Error.Resource != c.deniedResource || !slices.Equal(o.res.Error.PolicyIDs, c.policyIDs) {
			t.Errorf("%s: want %s on %s denied by %q, got exit %d: %s", c.name, c.deniedAction, c.deniedResource, c.policyIDs, o.code, o.raw)
		}
	}
}

// The Rex-compatible policies give Rex's decisions to real scripts doing
// the file operations they are about (the other namespaces are pinned by
// policies/rex-compat/tests.json through rex-policy test).
func TestRexCompatDecisions(t *testing.T) {
	requireSandbox(t)
	root := t.TempDir()
	const dir = "policies/rex-compat"
	file := func(p string) string { return `file_system::File::"` + root + p + `"` }

	t.Run("quickstart", func(t *testing.T) {
		tmp := root + "/tmp"
		must(t, os.MkdirAll(tmp, 0o755))
		must(t, os.WriteFile(tmp+"/other.txt", []byte("x"), 0o644))
		pol := compatPolicy(t, dir, "quickstart.cedar", `"/tmp/rex-quickstart.txt"`, fmt.Sprintf("%q", tmp+"/rex-quickstart.txt"), `"/tmp"`, fmt.Sprintf("%q", tmp))
		qs := tmp + "/rex-quickstart.txt"
		runCompat(t, pol, []compatCase{
			{name: "create, write, read, stat", script: fmt.Sprintf(`fs.write(%[1]q, "hi"); fs.write(%[1]q, "!", {append: true}); assert(fs.cat(%[1]q) == "hi!"); fs.stat(%[1]q).size`, qs)},
			{name: "another file in /tmp", script: fmt.Sprintf(`fs.cat(%q)`, tmp+"/other.txt"), deniedAction: "open", deniedResource: file("/tmp/other.txt"), policyIDs: []string{}},
			{name: "delete", script: fmt.Sprintf(`fs.rm(%q)`, qs), deniedAction: "delete", deniedResource: file("/tmp/rex-quickstart.txt"), policyIDs: []string{}},
		})
	})
	t.Run("read-only tree", func(t *testing.T) {
		rep := root + "/srv/reports"
		must(t, os.MkdirAll(rep+"/2026", 0o755))
		must(t, os.WriteFile(rep+"/2026/q1.csv", []byte("a,b\n"), 0o644))
		pol := compatPolicy(t, dir, "readonly-tree.cedar", `"/srv/reports"`, fmt.Sprintf("%q", rep))
		runCompat(t, pol, []compatCase{
			{name: "list and read deep", script: fmt.Sprintf(`assert(keys(fs.ls(%q)) == ["2026"]); fs.cat(%q)`, rep, rep+"/2026/q1.csv")},
			{name: "write", script: fmt.Sprintf(`fs.write(%q, "x")`, rep+"/2026/q1.csv"), deniedAction: "write", deniedResource: file("/srv/reports/2026/q1.csv"), policyIDs: []string{}},
			// write is checked before create, so a new file is refused on
			// the same action as an existing one (no existence oracle).
			{name: "create", script: fmt.Sprintf(`fs.write(%q, "x")`, rep+"/new.csv"), deniedAction: "write", deniedResource: file("/srv/reports/new.csv"), policyIDs: []string{}},
		})
	})
	t.Run("read-write tree", func(t *testing.T) {
		data := root + "/srv/app/data"
		must(t, os.MkdirAll(data, 0o755))
		must(t, os.WriteFile(root+"/srv/app/outside", []byte("x"), 0o644))
		pol := compatPolicy(t, dir, "readwrite-tree.cedar", `"/srv/app/data`, fmt.Sprintf(`"%s`, data))
		runCompat(t, pol, []compatCase{
			{name: "create, read, mkdir, delete", script: fmt.Sprintf(`fs.write(%[1]q + "/a", "1"); fs.mkdir(%[1]q + "/d/e", {parents: true}); assert(fs.cat(%[1]q + "/a") == "1"); fs.rm(%[1]q + "/d", {recursive: true}); fs.rm(%[1]q + "/a"); keys(fs.ls(%[1]q))`, data)},
			{name: "outside the tree", script: fmt.Sprintf(`fs.write(%q, "y")`, root+"/srv/app/outside"), deniedAction: "write", deniedResource: file("/srv/app/outside"), policyIDs: []string{}},
			{name: "move within", script: fmt.Sprintf(`fs.write(%[1]q + "/m", "1"); fs.mv(%[1]q + "/m", %[1]q + "/n"); fs.cat(%[1]q + "/n")`, data)},
			{name: "move out", script: fmt.Sprintf(`fs.mv(%q, %q)`, data+"/n", root+"/srv/app/n"), deniedAction: "move", deniedResource: file("/srv/app/data/n"), policyIDs: []string{}},
		})
	})
	t.Run("operations", func(t *testing.T) {
		logs, etc := root+"/var/log/app", root+"/etc/app"
		must(t, os.MkdirAll(logs, 0o755))
		must(t, os.MkdirAll(etc, 0o755))
		must(t, os.WriteFile(logs+"/app.log.1", []byte("old\n"), 0o644))
		must(t, os.WriteFile(etc+"/app.conf", []byte("port = 80\n"), 0o644))
		pol := compatPolicy(t, dir, "operations.cedar", `"/var/log/app"`, fmt.Sprintf("%q", logs), `"/etc/app"`, fmt.Sprintf("%q", etc))
		if b, err := exec.Command(filepath.Join(testutil.Binaries(t), "rex-policy"), "validate", pol).CombinedOutput(); err != nil {
			t.Fatalf("moved operations policy: %v\n%s", err, b)
		}
		runCompat(t, pol, []compatCase{
			{name: "SafeIO on the logs, read the config", script: fmt.Sprintf(`fs.rm(%q); fs.write(%q, "new\n"); fs.cat(%q)`, logs+"/app.log.1", logs+"/app.log", etc+"/app.conf")},
			{name: "config is read-only", script: fmt.Sprintf(`fs.write(%q, "port = 1\n")`, etc+"/app.conf"), deniedAction: "write", deniedResource: file("/etc/app/app.conf"), policyIDs: []string{}},
		})
	})
}

// Every example runs under its own least policy on a fixture tree, and the
// least policy does not stretch to a neighbouring file.
func TestExamples(t *testing.T) {
	requireSandbox(t)
	root := t.TempDir()
	for _, d := range []string{"/var/lib/app/a/b", "/var/log/app", "/run/app", "/etc/app"} {
		must(t, os.MkdirAll(root+d, 0o755))
	}
	files := map[string]string{
		"/var/lib/app/small":    "hi\n",
		"/var/lib/app/a/mid":    strings.Repeat("m", 500),
		"/var/lib/app/a/b/big":  strings.Repeat("b", 3000),
		"/var/log/app/app.log":  "INFO start\nERROR disk full\nINFO ok\nERROR again\n",
		"/var/log/app/auth.log": "ERROR secret\n",
		"/run/app/app.pid":      "4242\n",
		"/run/app/heartbeat":    "",
		"/run/app/health.json":  `{"status": "ok", "checks": {"db": "ok", "cache": "degraded"}}`,
		"/etc/app/app.conf":     "# app\nport = 80\nname = x\n",
		"/etc/app/other.conf":   "port = 1\n",
	}
	for p, data := range files {
		must(t, os.WriteFile(root+p, []byte(data), 0o644))
	}
	mover := strings.NewReplacer(`"/var/lib/app`, `"`+root+`/var/lib/app`, `"/var/log/app`, `"`+root+`/var/log/app`,
		`"/run/app`, `"`+root+`/run/app`, `"/etc/app`, `"`+root+`/etc/app`)
	examples := filepath.Join(testutil.RepoRoot(t), "examples")
	run := func(name string, args ...string) outcome {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(examples, name+".cedar"))
		must(t, err)
		pol := filepath.Join(t.TempDir(), name+".cedar")
		must(t, os.WriteFile(pol, []byte(mover.Replace(string(b))), 0o644))
		script, err := os.ReadFile(filepath.Join(examples, name+".risor"))
		must(t, err)
		return rexExec(t, string(script), nil, append([]string{"--policy", pol, "--output", "json"}, args...)...)
	}
	output := func(o outcome) map[string]any {
		t.Helper()
		wantStatus(t, o, ipc.StatusSuccess, "", 0)
		var m map[string]any
		must(t, json.Unmarshal(o.res.Output, &m))
		return m
	}

	du := output(run("disk_usage", "--arg", "dir="+root+"/var/lib/app", "--arg-json", "top=1"))
	if du["total_bytes"] != float64(3503) || fmt.Sprint(du["largest"]) != fmt.Sprintf("[map[bytes:3500 kind:dir path:%s/var/lib/app/a]]", root) {
		t.Errorf("disk_usage = %v", du)
	}

	lg := output(run("log_grep", "--arg", "file="+root+"/var/log/app/app.log"))
	if lg["count"] != float64(2) || fmt.Sprint(lg["matches"]) != "[map[line:ERROR disk full line_number:2] map[line:ERROR again line_number:4]]" {
		t.Errorf("log_grep = %v", lg)
	}
	wantStatus(t, run("log_grep", "--arg", "file="+root+"/var/log/app/auth.log"), ipc.StatusError, ipc.ErrAccessDenied, 3)

	pc := output(run("process_check", "--arg", "pidfile="+root+"/run/app/app.pid", "--arg", "heartbeat="+root+"/run/app/heartbeat"))
	if pc["running"] != true || pc["pid"] != float64(4242) {
		t.Errorf("process_check = %v", pc)
	}
	old := time.Now().Add(-time.Hour)
	must(t, os.Chtimes(root+"/run/app/heartbeat", old, old))
	pc = output(run("process_check", "--arg", "pidfile="+root+"/run/app/app.pid", "--arg", "heartbeat="+root+"/run/app/heartbeat"))
	if pc["running"] != false || !strings.Contains(fmt.Sprint(pc["problems"]), "old (limit 60s)") {
		t.Errorf("process_check with a stale heartbeat = %v", pc)
	}

	o := run("health_probe", "--arg", "status_file="+root+"/run/app/health.json")
	hp := output(o)
	if hp["healthy"] != false || fmt.Sprint(hp["failing"]) != "[cache]" || len(o.res.Alarms) != 1 || len(o.res.Metrics) != 1 {
		t.Errorf("health_probe = %v, alarms %v, metrics %v", hp, o.res.Alarms, o.res.Metrics)
	}

	ce := output(run("config_edit", "--arg", "file="+root+"/etc/app/app.conf", "--arg", "key=port", "--arg", "value=8080"))
	if ce["changed"] != true || ce["old"] != "80" {
		t.Errorf("config_edit = %v", ce)
	}
	if b, _ := os.ReadFile(root + "/etc/app/app.conf"); string(b) != "# app\nport = 8080\nname = x\n" {
		t.Errorf("edited config = %q", b)
	}
	wantStatus(t, run("config_edit", "--arg", "file="+root+"/etc/app/other.conf", "--arg", "key=port", "--arg", "value=2"),
		ipc.StatusError, ipc.ErrAccessDenied, 3)
}
