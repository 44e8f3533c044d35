package e2e

// Production-daemon behaviour of rex-broker (issue 5): identity and the
// group gate, fail closed on missing layers, admission under a storm,
// cleanup however a run ends, audit, reload and rotation. Every test runs
// the real binaries as root (CI); users and groups are created for the test
// and removed after it.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rex-sh/rex/internal/testutil"
	"github.com/rex-sh/rex/ipc"
)

// broker is a rex-broker started by these tests, with its log readable
// while it runs and an environment of the test's choosing.
type broker struct {
	socket, audit string
	cmd           *exec.Cmd
	log           *testutil.SyncBuffer
	done          chan struct{}
}

func startBroker(t *testing.T, policyDir string, env []string, extra ...string) *broker {
	t.Helper()
	return startBrokerBinary(t, filepath.Join(testutil.Binaries(t), "rex-broker"), policyDir, env, extra...)
}

// startBrokerBinary is startBroker with the rex-broker binary at path.
func startBrokerBinary(t *testing.T, path, policyDir string, env []string, extra ...string) *broker {
	t.Helper()
	testutil.RequireRoot(t)
	dir, err := os.MkdirTemp("", "rex-e2e-")
	must(t, err)
	must(t, os.Chmod(dir, 0o755))
	t.Cleanup(func() { os.RemoveAll(dir) })
	b := &broker{socket: filepath.Join(dir, "rex.sock"), audit: filepath.Join(dir, "audit.jsonl"), log: &testutil.SyncBuffer{}, done: make(chan struct{})}
	// No pool unless a test asks: these tests count the broker's workers,
	// and TestDaemonPool covers the pool on its own.
	args := append([]string{"--socket", b.socket, "--policy-dir", policyDir, "--audit-log", b.audit, "--socket-mode", "0666", "--pool", "0"}, extra...)
	b.cmd = exec.Command(path, args...)
	b.cmd.Env = append(os.Environ(), env...)
	b.cmd.Stderr = b.log
	must(t, b.cmd.Start())
	go func() { _ = b.cmd.Wait(); close(b.done) }()
	t.Cleanup(func() {
		_ = b.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-b.done:
		case <-time.After(10 * time.Second):
			_ = b.cmd.Process.Kill()
			t.Error("broker did not stop on SIGTERM")
		}
		if t.Failed() {
			t.Logf("broker (%v) log:\n%s", b.cmd.ProcessState, b.log.String())
		}
	})
	b.waitLog(t, "serving on")
	return b
}

// waitLog waits until the broker's log contains s.
func (b *broker) waitLog(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(b.log.String(), s) {
			return
		}
		select {
		case <-b.done:
			t.Fatalf("broker exited while waiting for %q:\n%s", s, b.log.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatalf("broker never logged %q:\n%s", s, b.log.String())
}

// countLog counts occurrences of s in the broker's log.
func (b *broker) countLog(s string) int { return strings.Count(b.log.String(), s) }

// testUser is a user (and optionally a group) created for one test.
type testUser struct {
	name     string
	uid, gid int
}

func randSuffix() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func addGroup(t *testing.T, name string) int {
	t.Helper()
	if out, err := exec.Command("groupadd", name).CombinedOutput(); err != nil {
		testutil.Skip(t, fmt.Sprintf("groupadd: %v: %s", err, out))
	}
	t.Cleanup(func() { _ = exec.Command("groupdel", name).Run() })
	g, err := user.LookupGroup(name)
	must(t, err)
	gid, _ := strconv.Atoi(g.Gid)
	return gid
}

func addUser(t *testing.T, name string, groups ...string) testUser {
	t.Helper()
	args := []string{"--no-create-home", "--shell", "/usr/sbin/nologin", "--user-group"}
	if len(groups) > 0 {
		args = append(args, "--groups", strings.Join(groups, ","))
	}
	if out, err := exec.Command("useradd", append(args, name)...).CombinedOutput(); err != nil {
		testutil.Skip(t, fmt.Sprintf("useradd: %v: %s", err, out))
	}
	t.Cleanup(func() { _ = exec.Command("userdel", name).Run() })
	u, err := user.Lookup(name)
	must(t, err)
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return testUser{name: name, uid: uid, gid: gid}
}

// credential runs a child as u with u's groups, as a login would.
func (u testUser) credential(t *testing.T) *syscall.Credential {
	t.Helper()
	lu, err := user.Lookup(u.name)
	must(t, err)
	gids, err := lu.GroupIds()
	must(t, err)
	c := &syscall.Credential{Uid: uint32(u.uid), Gid: uint32(u.gid)}
	for _, g := range gids {
		n, _ := strconv.Atoi(g)
		c.Groups = append(c.Groups, uint32(n))
	}
	return c
}

// rexExecAs runs rex-exec through the broker as u (nil: as root).
func rexExecAs(ctx context.Context, t *testing.T, u *testUser, socket, script string, args ...string) outcome {
	t.Helper()
	bin := testutil.Binaries(t)
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "rex-exec"), append(append([]string{"--socket", socket, "--output", "json"}, args...), "-")...)
	cmd.Stdin = strings.NewReader(script)
	if u != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: u.credential(t)}
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	o := outcome{raw: out.String(), err: errb.String(), took: time.Since(start)}
	if ctx.Err() != nil {
		return o // the test itself stopped this client; nothing to check
	}
	if ee, ok := err.(*exec.ExitError); ok {
		o.code = ee.ExitCode()
	} else if err != nil {
		t.Errorf("rex-exec: %v", err)
		return o
	}
	if err := json.Unmarshal(out.Bytes(), &o.res); err != nil {
		t.Errorf("rex-exec printed no JSON result (exit %d): %v\nstdout: %s\nstderr: %s", o.code, err, out.String(), errb.String())
	}
	return o
}

// workersOf lists the live rex-worker children of the broker.
func workersOf(ppid int) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		name, pp, state := procStat(pid)
		if pp == ppid && strings.HasPrefix(name, "rex-worker") && state != "Z" {
			out = append(out, pid)
		}
	}
	return out
}

// procStat returns a process's name, parent pid and state ("" if gone).
func procStat(pid int) (string, int, string) {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0, ""
	}
	s := string(st)
	i, j := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if i < 0 || j < i {
		return "", 0, ""
	}
	f := strings.Fields(s[j+1:])
	if len(f) < 2 {
		return "", 0, ""
	}
	pp, _ := strconv.Atoi(f[1])
	return s[i+1 : j], pp, f[0]
}

// runCgroupDirs returns the cgroup directories a run of the broker uses,
// by the naming the broker gives them (rex/run-<run id>).
func runCgroupDirs(runID string) []string {
	var out []string
	for _, parent := range []string{"/sys/fs/cgroup/rex", "/sys/fs/cgroup/memory/rex", "/sys/fs/cgroup/pids/rex"} {
		out = append(out, filepath.Join(parent, "run-"+runID))
	}
	return out
}

func existing(paths []string) []string {
	var out []string
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// waitWorkers waits until the broker has n workers locked down (seccomp
// on), and returns its workers.
func waitWorkers(t *testing.T, brokerPID, n int) []int {
	t.Helper()
	for i := 0; i < 500; i++ {
		ws := workersOf(brokerPID)
		ready := 0
		for _, w := range ws {
			if lockedDown(w) {
				ready++
			}
		}
		if ready >= n {
			return ws
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("fewer than %d workers running", n)
	return nil
}

func auditEvents(t *testing.T, path, event string) []map[string]any {
	var out []map[string]any
	for _, r := range readAudit(t, path) {
		if r["event"] == event {
			out = append(out, r)
		}
	}
	return out
}

// ---- identity ---------------------------------------------------------------

// Two users through one daemon: each is its own principal, the group
// policy applies to the member only, and their concurrent workers run under
// distinct pool uids that neither caller can signal.
func TestDaemonTwoUsers(t *testing.T) {
	testutil.RequireRoot(t)
	f := newFixture(t)
	sfx := randSuffix()
	group := "rexg" + sfx
	addGroup(t, group)
	alice := addUser(t, "rexa"+sfx, group)
	bob := addUser(t, "rexb"+sfx)
	dir := policyDir(t, f)
	target := filepath.Join(f.dir, "team.txt")
	must(t, os.WriteFile(target, []byte("t"), 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "team.cedar"), []byte(fmt.Sprintf(`
@id("team-stat")
permit(principal in Group::%q, action == file_system::Action::"stat", resource == file_system::File::%q);
`, group, target)), 0o644))
	b := startBroker(t, dir, nil)
	script := fmt.Sprintf(`fs.exists(%q)`, target)
	ctx := context.Background()

	o := rexExecAs(ctx, t, &alice, b.socket, script)
	wantStatus(t, o, ipc.StatusSuccess, "", 0)
	o = rexExecAs(ctx, t, &bob, b.socket, script)
	wantStatus(t, o, ipc.StatusError, ipc.ErrAccessDenied, 3)
	if !strings.Contains(o.res.Error.Message, bob.name+" unauthorized") {
		t.Errorf("bob's denial does not name bob: %s", o.res.Error.Message)
	}
	starts := auditEvents(t, b.audit, "run_start")
	if len(starts) != 2 || starts[0]["principal"] != alice.name || starts[1]["principal"] != bob.name ||
		starts[0]["uid"] != float64(alice.uid) || starts[1]["uid"] != float64(bob.uid) {
		t.Errorf("run_start records do not name each peer: %v", starts)
	}

	// Concurrent runs: workers under distinct pool uids, neither a caller's.
	var wg sync.WaitGroup
	for _, u := range []*testUser{&alice, &bob} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := rexExecAs(ctx, t, u, b.socket, `for {}`, "--timeout", "4s")
			if o.res.Error == nil || o.res.Error.ErrorType != ipc.ErrTimeout {
				t.Errorf("%s: want a timeout, got %s", u.name, o.raw)
			}
		}()
	}
	ws := waitWorkers(t, b.cmd.Process.Pid, 2)
	uids := map[string]bool{}
	for _, w := range ws {
		st := readStatus(t, w)
		uid := strings.Fields(st["Uid"])[0]
		for _, u := range []testUser{alice, bob} {
			if uid == strconv.Itoa(u.uid) || uid == "0" {
				t.Errorf("worker %d runs as uid %s, a caller's or root", w, uid)
			}
		}
		if st["TracerPid"] != "0" {
			t.Errorf("worker %d is traced", w)
		}
		uids[uid] = true
		// Neither caller can signal any worker (its own included).
		for _, u := range []testUser{alice, bob} {
			cmd := exec.Command("/bin/kill", "-0", strconv.Itoa(w))
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: u.credential(t)}
			if out, err := cmd.CombinedOutput(); err == nil {
				t.Errorf("%s could signal worker %d: %s", u.name, w, out)
			}
		}
	}
	if len(uids) != len(ws) {
		t.Errorf("concurrent workers share a uid: %v", uids)
	}
	wg.Wait()
}

// A01: a peer outside --allow-group is refused before any work, with an
// audit record naming its uid and pid.
func TestA01_AllowGroupGate(t *testing.T) {
	testutil.RequireRoot(t)
	f := newFixture(t)
	sfx := randSuffix()
	group := "rexg" + sfx
	addGroup(t, group)
	member := addUser(t, "rexm"+sfx, group)
	outsider := addUser(t, "rexo"+sfx)
	b := startBroker(t, policyDir(t, f), nil, "--allow-group", group)
	ctx := context.Background()
	o := rexExecAs(ctx, t, &member, b.socket, `1 + 1`)
	wantStatus(t, o, ipc.StatusSuccess, "", 0)
	o = rexExecAs(ctx, t, &outsider, b.socket, `1 + 1`)
	wantStatus(t, o, ipc.StatusError, ipc.ErrCommunication, 1)
	if !strings.Contains(o.res.Error.Message, "not in a group allowed") {
		t.Errorf("refusal does not say why: %s", o.res.Error.Message)
	}
	// rex-exec sends its run frame right behind its hello: the refusal
	// must still reach it when the broker stops reading long before a
	// 1 MiB script is through.
	o = rexExecAs(ctx, t, &outsider, b.socket, "// "+strings.Repeat("x", ipc.MaxScript-16)+"\n1")
	wantStatus(t, o, ipc.StatusError, ipc.ErrCommunication, 1)
	if !strings.Contains(o.res.Error.Message, "not in a group allowed") {
		t.Errorf("refusal of a large script does not say why: %s", o.res.Error.Message)
	}
	refused := auditEvents(t, b.audit, "refused")
	if len(refused) != 2 {
		t.Fatalf("want two refused records for uid %d: %v", outsider.uid, refused)
	}
	for _, r := range refused {
		if r["uid"] != float64(outsider.uid) || r["pid"] == nil || r["decision"] != "deny" {
			t.Fatalf("want refused records for uid %d with a pid: %v", outsider.uid, refused)
		}
	}
	if n := len(auditEvents(t, b.audit, "run_start")); n != 1 {
		t.Errorf("%d runs started, want only the member's", n)
	}
}

// A03: identity cannot ride in a request. A run frame with extra fields
// (principal, uid) is refused as a protocol error, and the hello ack names
// the socket peer.
func TestA03_IdentityFieldsRefused(t *testing.T) {
	f := newFixture(t)
	b := startBroker(t, policyDir(t, f), nil)
	c, err := net.Dial("unix", b.socket)
	must(t, err)
	defer c.Close()
	must(t, ipc.WriteFrame(c, ipc.MsgHello, &ipc.Hello{Version: ipc.Version, Client: "test"}))
	var ack ipc.HelloAck
	must(t, ipc.ReadFrameAs(c, ipc.MsgHelloAck, &ack))
	if ack.Principal != "root" {
		t.Errorf("hello ack principal %q, want the peer, root", ack.Principal)
	}
	type spoof struct {
		Script    []byte `msgpack:"script"`
		Principal string `msgpack:"principal"`
		UID       uint32 `msgpack:"uid"`
	}
	must(t, ipc.WriteFrame(c, ipc.MsgRun, &spoof{Script: []byte("1"), Principal: "alice", UID: 1000}))
	var res ipc.Result
	err = ipc.ReadFrameAs(c, ipc.MsgResult, &res)
	var e *ipc.Error
	if !errors.As(err, &e) || e.Code != ipc.CodeProtocol {
		t.Fatalf("run frame with identity fields: got %v, want a protocol error", err)
	}
	if n := len(auditEvents(t, b.audit, "run_start")); n != 0 {
		t.Errorf("a spoofed run started: %d run_start records", n)
	}
}

// ---- lifecycle --------------------------------------------------------------

// R03: SIGKILL the broker mid-run: the worker is gone within 100 ms
// (PDEATHSIG) and the janitor removes the run's cgroups. SIGKILL the client
// mid-run: the run is cancelled, its worker and cgroups gone.
func TestR03_KillBrokerMidRun(t *testing.T) {
	f := newFixture(t)
	b := startBroker(t, policyDir(t, f), nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go rexExecAs(ctx, t, nil, b.socket, `for {}`, "--timeout", "20s")
	ws := waitWorkers(t, b.cmd.Process.Pid, 1)
	var runID string
	for i := 0; i < 100 && runID == ""; i++ {
		if s := auditEvents(t, b.audit, "run_start"); len(s) == 1 {
			runID, _ = s[0]["run_id"].(string)
		}
		time.Sleep(10 * time.Millisecond)
	}
	var dirs []string
	for i := 0; i < 300 && len(dirs) == 0; i++ {
		if dirs = existing(runCgroupDirs(runID)); len(dirs) == 0 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if len(dirs) == 0 {
		t.Fatalf("run %s has no cgroup directory", runID)
	}
	must(t, b.cmd.Process.Kill())
	<-b.done
	killed := time.Now()
	for {
		_, _, state := procStat(ws[0])
		if state == "" || state == "Z" {
			break
		}
		if time.Since(killed) > 100*time.Millisecond {
			t.Fatalf("worker %d still %s 100 ms after the broker died", ws[0], state)
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Logf("worker gone %v after the broker was reaped", time.Since(killed))
	for i := 0; i < 300 && len(existing(dirs)) > 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if left := existing(dirs); len(left) > 0 {
		t.Errorf("cgroups left after the broker was killed: %v", left)
	}
}

func TestR03_KillClientMidRun(t *testing.T) {
	f := newFixture(t)
	b := startBroker(t, policyDir(t, f), nil)
	bin := testutil.Binaries(t)
	cmd := exec.Command(filepath.Join(bin, "rex-exec"), "--socket", b.socket, "--timeout", "20s", "-")
	cmd.Stdin = strings.NewReader(`for {}`)
	must(t, cmd.Start())
	ws := waitWorkers(t, b.cmd.Process.Pid, 1)
	must(t, cmd.Process.Kill())
	_ = cmd.Wait()
	wantCancelled(t, b, ws[0])
}

// wantCancelled waits for the broker's run_end record of a run its client
// abandoned, and checks the run's worker and cgroups are gone.
func wantCancelled(t *testing.T, b *broker, worker int) {
	t.Helper()
	var end map[string]any
	for i := 0; i < 300 && end == nil; i++ {
		if e := auditEvents(t, b.audit, "run_end"); len(e) == 1 {
			end = e[0]
		}
		time.Sleep(10 * time.Millisecond)
	}
	if end == nil || end["error_type"] != ipc.ErrCommunication {
		t.Fatalf("no cancelled run_end record: %v", end)
	}
	if _, _, state := procStat(worker); state != "" && state != "Z" {
		t.Errorf("worker %d still %s after its run ended", worker, state)
	}
	if left := existing(runCgroupDirs(end["run_id"].(string))); len(left) > 0 {
		t.Errorf("cgroups left: %v", left)
	}
}

// Ctrl-C on rex-exec cancels its run: rex-exec dies of the signal at once,
// as Unix tools do, its connection closes with it, and the broker kills the
// worker and audits the run's end as cancelled.
func TestDaemonClientInterrupt(t *testing.T) {
	f := newFixture(t)
	b := startBroker(t, policyDir(t, f), nil)
	bin := testutil.Binaries(t)
	cmd := exec.Command(filepath.Join(bin, "rex-exec"), "--socket", b.socket, "--timeout", "20s", "--output", "json", "-")
	cmd.Stdin = strings.NewReader(`for {}`)
	must(t, cmd.Start())
	ws := waitWorkers(t, b.cmd.Process.Pid, 1)
	sent := time.Now()
	must(t, cmd.Process.Signal(os.Interrupt))
	_ = cmd.Wait()
	if took := time.Since(sent); took > 2*time.Second {
		t.Errorf("rex-exec took %v to end after SIGINT", took)
	}
	if st := cmd.ProcessState.Sys().(syscall.WaitStatus); !st.Signaled() || st.Signal() != syscall.SIGINT {
		t.Fatalf("rex-exec after SIGINT: %v, want killed by SIGINT", cmd.ProcessState)
	}
	wantCancelled(t, b, ws[0])
}

// As installed with any PREFIX (make install): rex-broker in bin finds
// rex-worker in libexec/rex beside it, without --worker.
func TestDaemonFindsInstalledWorker(t *testing.T) {
	f := newFixture(t)
	bin := testutil.Binaries(t)
	prefix, err := os.MkdirTemp("", "rex-prefix-") // the worker's uid must reach libexec
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(prefix) })
	must(t, os.Chmod(prefix, 0o755))
	for name, dir := range map[string]string{"rex-broker": "bin", "rex-worker": "libexec/rex"} {
		b, err := os.ReadFile(filepath.Join(bin, name))
		must(t, err)
		must(t, os.MkdirAll(filepath.Join(prefix, dir), 0o755))
		must(t, os.WriteFile(filepath.Join(prefix, dir, name), b, 0o755))
	}
	b := startBrokerBinary(t, filepath.Join(prefix, "bin", "rex-broker"), policyDir(t, f), nil)
	o := rexExec(t, `"hi"`, nil, "--socket", b.socket)
	wantStatus(t, o, ipc.StatusSuccess, "", 0)
	if string(o.res.Output) != `"hi"` {
		t.Fatalf("output %s", o.res.Output)
	}
}

// Graceful shutdown: SIGTERM lets a run go on until the grace period, then
// kills it, reports the shutdown to the client and audits the run's end.
func TestDaemonShutdownKillsAfterGrace(t *testing.T) {
	f := newFixture(t)
	b := startBroker(t, policyDir(t, f), nil, "--shutdown-grace", "500ms")
	res := make(chan outcome, 1)
	go func() { res <- rexExecAs(context.Background(), t, nil, b.socket, `for {}`, "--timeout", "20s") }()
	ws := waitWorkers(t, b.cmd.Process.Pid, 1)
	start := time.Now()
	must(t, b.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-b.done:
	case <-time.After(5 * time.Second):
		t.Fatal("broker still running 5 s after SIGTERM with a 500 ms grace")
	}
	if took := time.Since(start); took < 400*time.Millisecond {
		t.Errorf("broker exited after %v, before the grace period", took)
	}
	o := <-res
	if o.res.Error == nil || !strings.Contains(o.res.Error.Message, "shutting down") {
		t.Errorf("client not told of the shutdown: %s", o.raw)
	}
	if e := auditEvents(t, b.audit, "run_end"); len(e) != 1 {
		t.Errorf("want one run_end record, got %v", e)
	}
	if _, _, state := procStat(ws[0]); state != "" && state != "Z" {
		t.Errorf("worker %d survived the shutdown", ws[0])
	}
}

// R04-lite: a storm of concurrent runs from two users, half hostile, under
// small limits: every run ends (admitted or refused with
// RESOURCE_LIMIT_EXCEPTION), well-behaved runs succeed (retrying when
// refused for capacity),
// and no worker, zombie or cgroup is left. REX_TEST_STORM sets the size.
func TestR04_Storm(t *testing.T) {
	testutil.RequireRoot(t)
	n := 40
	if s, err := strconv.Atoi(os.Getenv("REX_TEST_STORM")); err == nil && s > 0 {
		n = s
	}
	f := newFixture(t)
	sfx := randSuffix()
	users := []*testUser{ptr(addUser(t, "rexs"+sfx)), ptr(addUser(t, "rext"+sfx))}
	b := startBroker(t, policyDir(t, f), nil, "--max-runs", "10", "--max-runs-per-user", "6", "--memory-mb", "128", "--timeout", "2s")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	hostile := []string{`for {}`, `s := "x"; l := []; for { l.append(s); s = s + s }`}
	var wg sync.WaitGroup
	var mu sync.Mutex
	counts := map[string]int{}
	start := time.Now()
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u := users[i%2]
			script, good := fmt.Sprintf(`fs.exists(%q)`, f.data+"/hello.txt"), i%4 < 2
			if !good {
				script = hostile[i%2]
			}
			o := rexExecAs(ctx, t, u, b.socket, script)
			// A well-behaved client retries when refused for capacity, so
			// every well-behaved run must finish while the storm lasts.
			for good && o.res.Error != nil && o.res.Error.ErrorType == ipc.ErrResourceLimit && ctx.Err() == nil {
				mu.Lock()
				counts["good retried"]++
				mu.Unlock()
				time.Sleep(50 * time.Millisecond)
				o = rexExecAs(ctx, t, u, b.socket, script)
			}
			errType := ""
			if o.res.Error != nil {
				errType = o.res.Error.ErrorType
			}
			mu.Lock()
			counts[fmt.Sprintf("good=%v %s", good, errType)]++
			mu.Unlock()
			switch {
			case good && o.res.Status == ipc.StatusSuccess:
			case !good && errType == ipc.ErrResourceLimit:
			case !good && errType == ipc.ErrTimeout:
			default:
				t.Errorf("run %d (good=%v): unexpected %s", i, good, o.raw)
			}
		}()
	}
	wg.Wait()
	t.Logf("%d runs in %v: %v", n, time.Since(start), counts)
	if counts["good=true "] != n/2 {
		t.Errorf("%d of %d well-behaved runs succeeded", counts["good=true "], n/2)
	}
	if ws := workersOf(b.cmd.Process.Pid); len(ws) > 0 {
		t.Errorf("workers left: %v", ws)
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, _ := strconv.Atoi(e.Name())
		if _, pp, state := procStat(pid); pid > 0 && pp == b.cmd.Process.Pid && state == "Z" {
			t.Errorf("zombie child %d of the broker", pid)
		}
	}
	for _, s := range auditEvents(t, b.audit, "run_start") {
		if left := existing(runCgroupDirs(s["run_id"].(string))); len(left) > 0 {
			t.Errorf("cgroups left: %v", left)
		}
	}
	if s, e := len(auditEvents(t, b.audit, "run_start")), len(auditEvents(t, b.audit, "run_end")); s != e {
		t.Errorf("%d run_start records but %d run_end", s, e)
	}
}

func ptr[T any](v T) *T { return &v }

// ---- fail closed ------------------------------------------------------------

// R06: each missing layer (reported missing through the documented test
// hook REX_TEST_PROBE_MISSING) makes the broker refuse runs naming it;
// --allow-degraded names the gap and runs go ahead, logged and audited.
func TestR06_MissingLayerRefused(t *testing.T) {
	testutil.RequireRoot(t)
	f := newFixture(t)
	dir := policyDir(t, f)
	layers := []string{"user-namespace", "pid-namespace", "net-namespace", "mount-namespace", "ipc-namespace",
		"uts-namespace", "cgroup-namespace", "seccomp", "openat2", "pidfd", "landlock", "cgroup", "so-peercred"}
	bin := testutil.Binaries(t)
	out, err := exec.Command(filepath.Join(bin, "rex-broker"), "doctor").CombinedOutput()
	if err != nil {
		t.Fatalf("doctor fails on the CI host: %v\n%s", err, out)
	}
	for _, l := range layers {
		if !strings.Contains(string(out), l) {
			t.Errorf("doctor does not list %s:\n%s", l, out)
		}
	}
	cmd := exec.Command(filepath.Join(bin, "rex-broker"), "doctor")
	cmd.Env = append(os.Environ(), "REX_TEST_PROBE_MISSING=landlock")
	out, err = cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "landlock          missing") {
		t.Errorf("doctor with landlock missing: %v\n%s", err, out)
	}

	for _, l := range layers {
		t.Run(l, func(t *testing.T) {
			env := []string{"REX_TEST_PROBE_MISSING=" + l}
			b := startBroker(t, dir, env)
			o := rexExecAs(context.Background(), t, nil, b.socket, `1 + 1`)
			wantStatus(t, o, ipc.StatusError, ipc.ErrInternal, 1)
			if !strings.Contains(o.res.Error.Message, "sandbox layer missing on this host: "+l) {
				t.Errorf("refusal does not name %s: %s", l, o.res.Error.Message)
			}
			if !strings.Contains(b.log.String(), "REFUSING ALL RUNS: required sandbox layer missing: "+l) {
				t.Errorf("start-up log does not name %s:\n%s", l, b.log.String())
			}

			b = startBroker(t, dir, env, "--allow-degraded", l)
			for i := 0; i < 2; i++ {
				o = rexExecAs(context.Background(), t, nil, b.socket, `1 + 1`)
				wantStatus(t, o, ipc.StatusSuccess, "", 0)
			}
			if n := b.countLog("running degraded, without: " + l); n != 2 {
				t.Errorf("degraded run logged %d times, want once per run:\n%s", n, b.log.String())
			}
			for _, s := range auditEvents(t, b.audit, "run_start") {
				if d, _ := s["degraded"].([]any); len(d) != 1 || d[0] != l {
					t.Errorf("run_start does not record the degraded layer: %v", s)
				}
			}
		})
	}
}

// ---- audit, rotation, reload -------------------------------------------------

// Exactly one decision record per decision, across hundreds of requests.
func TestDaemonAuditOneRecordPerDecision(t *testing.T) {
	f := newFixture(t)
	b := startBroker(t, policyDir(t, f), nil)
	script := func(n int) string {
		return fmt.Sprintf(`for i := 0; i < %d; i++ { fs.exists(%q); try(func() { fs.cat(%q) }, "") }`, n, f.data+"/hello.txt", f.secret)
	}
	o := rexExecAs(context.Background(), t, nil, b.socket, script(1))
	wantStatus(t, o, ipc.StatusSuccess, "", 0)
	per := len(auditEvents(t, b.audit, "decision"))
	if per == 0 {
		t.Fatal("no decision records")
	}
	must(t, os.Truncate(b.audit, 0))
	const n = 300
	o = rexExecAs(context.Background(), t, nil, b.socket, script(n))
	wantStatus(t, o, ipc.StatusSuccess, "", 0)
	decisions := auditEvents(t, b.audit, "decision")
	if len(decisions) != n*per {
		t.Fatalf("%d decision records for %d iterations of %d decisions", len(decisions), n, per)
	}
	deny := 0
	for _, d := range decisions {
		if d["run_id"] != o.res.RunID {
			t.Fatalf("decision record of another run: %v", d)
		}
		if d["decision"] == "deny" {
			deny++
		}
	}
	if deny != n {
		t.Errorf("%d deny records, want one per denied cat (%d)", deny, n)
	}
	if s, e := len(auditEvents(t, b.audit, "run_start")), len(auditEvents(t, b.audit, "run_end")); s != 1 || e != 1 {
		t.Errorf("%d run_start and %d run_end records, want one each", s, e)
	}
}

// SIGUSR1 reopens the audit log: after a rename, new records go to a new
// file at the configured path and the renamed file keeps the old ones.
func TestDaemonAuditReopen(t *testing.T) {
	f := newFixture(t)
	b := startBroker(t, policyDir(t, f), nil)
	o1 := rexExecAs(context.Background(), t, nil, b.socket, `1`)
	wantStatus(t, o1, ipc.StatusSuccess, "", 0)
	must(t, os.Rename(b.audit, b.audit+".1"))
	must(t, b.cmd.Process.Signal(syscall.SIGUSR1))
	b.waitLog(t, "reopened the audit log")
	o2 := rexExecAs(context.Background(), t, nil, b.socket, `2`)
	wantStatus(t, o2, ipc.StatusSuccess, "", 0)
	old, cur := auditEvents(t, b.audit+".1", "run_end"), auditEvents(t, b.audit, "run_end")
	if len(old) != 1 || old[0]["run_id"] != o1.res.RunID || len(cur) != 1 || cur[0]["run_id"] != o2.res.RunID {
		t.Fatalf("records not split at the reopen: old %v, new %v", old, cur)
	}
	if st, err := os.Stat(b.audit); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("reopened audit log: %v %v", st.Mode(), err)
	}
}

// A broken policy set is refused whole and the old one stays; a good one
// changes decisions for new runs, both through the directory watch and
// SIGHUP.
func TestDaemonPolicyReload(t *testing.T) {
	f := newFixture(t)
	dir := policyDir(t, f)
	b := startBroker(t, dir, nil)
	script := fmt.Sprintf(`fs.cat(%q)`, f.data+"/hello.txt")
	o := rexExecAs(context.Background(), t, nil, b.socket, script)
	wantStatus(t, o, ipc.StatusSuccess, "", 0)

	// Broken: a syntax error in a new file. The watch reloads, fails, and
	// keeps the old set.
	must(t, os.WriteFile(filepath.Join(dir, "broken.cedar"), []byte("permit(principal, action, resource)\nforbid(oops;\n"), 0o644))
	b.waitLog(t, "failed, keeping the previous policies")
	if !strings.Contains(b.log.String(), "broken.cedar:") {
		t.Errorf("reload failure does not name the file:\n%s", b.log.String())
	}
	o = rexExecAs(context.Background(), t, nil, b.socket, script)
	wantStatus(t, o, ipc.StatusSuccess, "", 0)

	// Good: the broken file fixed into a forbid. New runs are denied.
	must(t, os.WriteFile(filepath.Join(dir, "broken.cedar"), []byte(fmt.Sprintf(`@id("no-hello")
forbid(principal, action, resource == file_system::File::%q);
`, f.data+"/hello.txt")), 0o644))
	b.waitLog(t, "policies (policy directory changed)")
	o = rexExecAs(context.Background(), t, nil, b.socket, script)
	wantStatus(t, o, ipc.StatusError, ipc.ErrAccessDenied, 3)

	// SIGHUP after removing it: allowed again.
	must(t, os.Remove(filepath.Join(dir, "broken.cedar")))
	must(t, b.cmd.Process.Signal(syscall.SIGHUP))
	b.waitLog(t, "policies (SIGHUP)")
	o = rexExecAs(context.Background(), t, nil, b.socket, script)
	wantStatus(t, o, ipc.StatusSuccess, "", 0)
}

// Per-run limits come from the broker's flags; the client can only ask for
// less. Each limit hit is named in the run_end record.
func TestDaemonRunLimits(t *testing.T) {
	f := newFixture(t)
	b := startBroker(t, policyDir(t, f), nil, "--timeout", "1s", "--output-bytes", "16", "--write-bytes", "100")
	ctx := context.Background()

	o := rexExecAs(ctx, t, nil, b.socket, `for {}`, "--timeout", "30s")
	wantStatus(t, o, ipc.StatusError, ipc.ErrTimeout, 5)
	if o.took > 5*time.Second {
		t.Errorf("client's 30s beat the broker's 1s cap: took %v", o.took)
	}
	o = rexExecAs(ctx, t, nil, b.socket, `print("0123456789012345678901234567890123456789")`)
	wantStatus(t, o, ipc.StatusSuccess, "", 0)
	if !strings.HasPrefix(o.res.Stdout, "0123456789012345\n[rex: stdout truncated at 16 bytes]") {
		t.Errorf("stdout not capped at 16 bytes: %q", o.res.Stdout)
	}
	o = rexExecAs(ctx, t, nil, b.socket, fmt.Sprintf(`fs.write(%q, strings.repeat("x", 60)); fs.write(%q, strings.repeat("y", 60))`,
		f.data+"/out/a", f.data+"/out/b"))
	if o.res.Status != ipc.StatusError || !strings.Contains(o.res.Error.Message, "write quota") {
		t.Errorf("second write past the 100-byte quota: %s", o.raw)
	}
	if _, err := os.Stat(f.data + "/out/b"); err == nil {
		if st, _ := os.Stat(f.data + "/out/b"); st.Size() > 0 {
			t.Errorf("write past the quota reached the file (%d bytes)", st.Size())
		}
	}

	starts, ends := auditEvents(t, b.audit, "run_start"), auditEvents(t, b.audit, "run_end")
	if len(starts) != 3 || len(ends) != 3 {
		t.Fatalf("%d run_start, %d run_end records", len(starts), len(ends))
	}
	if starts[0]["timeout"] != "1s" {
		t.Errorf("run_start timeout %v, want the broker's cap 1s", starts[0]["timeout"])
	}
	lim, _ := starts[0]["limits"].(map[string]any)
	if lim["output_bytes"] != float64(16) || lim["write_bytes"] != float64(100) {
		t.Errorf("run_start limits %v", lim)
	}
	for i, want := range []string{"timeout", "output", "write"} {
		if hit, _ := ends[i]["limits_hit"].([]any); len(hit) != 1 || hit[0] != want {
			t.Errorf("run_end %d limits_hit %v, want [%s]", i, ends[i]["limits_hit"], want)
		}
	}
}

// Socket activation: the broker serves on the listening socket passed as
// fd 3 with LISTEN_PID/LISTEN_FDS, as systemd's rex-broker.socket does, and
// leaves the socket file to its owner.
func TestDaemonSocketActivation(t *testing.T) {
	testutil.RequireRoot(t)
	f := newFixture(t)
	bin := testutil.Binaries(t)
	dir, err := os.MkdirTemp("", "rex-e2e-")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "activated.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	must(t, err)
	ln.SetUnlinkOnClose(false)
	lf, err := ln.File()
	must(t, err)
	ln.Close()
	defer lf.Close()
	// sh sets LISTEN_PID to its own pid, which exec keeps for rex-broker.
	cmd := exec.Command("/bin/sh", "-c", `export LISTEN_PID=$$ LISTEN_FDS=1; exec "$0" "$@"`,
		filepath.Join(bin, "rex-broker"), "--socket", filepath.Join(dir, "unused.sock"), "--policy-dir", policyDir(t, f),
		"--audit-log", filepath.Join(dir, "audit.jsonl"))
	cmd.ExtraFiles = []*os.File{lf}
	logb := &testutil.SyncBuffer{}
	cmd.Stderr = logb
	must(t, cmd.Start())
	lf.Close()
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-done
		if _, err := os.Stat(sock); err != nil {
			t.Errorf("broker removed the socket systemd owns: %v", err)
		}
	}()
	o := rexExecAs(context.Background(), t, nil, sock, `40 + 2`)
	wantStatus(t, o, ipc.StatusSuccess, "", 0)
	if !strings.Contains(logb.String(), "serving on the socket passed by systemd") {
		t.Errorf("broker did not use the passed socket:\n%s", logb.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "unused.sock")); err == nil {
		t.Error("broker created --socket although it was socket-activated")
	}
}

// A run keeps the policy set it started with: a reload mid-run changes
// decisions for new runs only.
func TestDaemonReloadKeepsRunningSet(t *testing.T) {
	f := newFixture(t)
	dir := policyDir(t, f)
	b := startBroker(t, dir, nil)
	hello := f.data + "/hello.txt"
	res := make(chan outcome, 1)
	go func() {
		res <- rexExecAs(context.Background(), t, nil, b.socket, fmt.Sprintf(`a := fs.cat(%q); time.sleep(2); a + fs.cat(%q)`, hello, hello))
	}()
	for i := 0; i < 500 && len(auditEvents(t, b.audit, "decision")) == 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	must(t, os.WriteFile(filepath.Join(dir, "late.cedar"), []byte(fmt.Sprintf(`@id("late-forbid")
forbid(principal, action, resource == file_system::File::%q);
`, hello)), 0o644))
	b.waitLog(t, "reloaded")
	o := rexExecAs(context.Background(), t, nil, b.socket, fmt.Sprintf(`fs.cat(%q)`, hello))
	wantStatus(t, o, ipc.StatusError, ipc.ErrAccessDenied, 3)
	o = <-res
	wantStatus(t, o, ipc.StatusSuccess, "", 0)
	if string(o.res.Output) != `"hello world\nhello world\n"` {
		t.Errorf("running script's output %s", o.res.Output)
	}
}

// The worker pool (issue 7): workers started ahead of runs are locked down
// while they wait, each serves exactly one run under its own uid, the pool
// refills, and shutdown leaves no worker or cgroup behind.
func TestDaemonPool(t *testing.T) {
	f := newFixture(t)
	b := startBroker(t, policyDir(t, f), nil, "--pool", "2")
	idle := waitWorkers(t, b.cmd.Process.Pid, 2)
	for _, pid := range idle {
		var st map[string]string
		for i := 0; i < 200; i++ { // a pooled worker locks itself down on its own
			st = readStatus(t, pid)
			if st["Seccomp"] == "2" {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		if st["Seccomp"] != "2" || st["NoNewPrivs"] != "1" || st["CapEff"] != "0000000000000000" {
			t.Errorf("pooled worker %d not locked down while idle: %v", pid, st)
		}
	}
	uids := map[float64]bool{}
	for i := 0; i < 5; i++ {
		o := rexExecAs(context.Background(), t, nil, b.socket, fmt.Sprintf(`fs.cat(%q)`, f.data+"/hello.txt"))
		wantStatus(t, o, ipc.StatusSuccess, "", 0)
	}
	for _, s := range auditEvents(t, b.audit, "run_start") {
		lim, _ := s["limits"].(map[string]any)
		u, _ := lim["worker_uid"].(float64)
		if uids[u] {
			t.Errorf("worker uid %v served two runs", u)
		}
		uids[u] = true
		if left := existing(runCgroupDirs(s["run_id"].(string))); len(left) > 0 {
			// Cleanup is asynchronous; give it a moment.
			time.Sleep(200 * time.Millisecond)
			if left = existing(runCgroupDirs(s["run_id"].(string))); len(left) > 0 {
				t.Errorf("cgroups left after run %v: %v", s["run_id"], left)
			}
		}
	}
	if len(uids) != 5 {
		t.Errorf("5 runs used %d distinct worker uids", len(uids))
	}
	ws := waitWorkers(t, b.cmd.Process.Pid, 2)
	for _, pid := range ws {
		for _, old := range idle {
			if pid == old {
				t.Errorf("pooled worker %d still idle after 5 runs took 2 of them", pid)
			}
		}
	}
	must(t, b.cmd.Process.Signal(syscall.SIGTERM))
	<-b.done
	for _, pid := range ws {
		if _, _, state := procStat(pid); state != "" && state != "Z" {
			t.Errorf("pooled worker %d survived the broker's shutdown", pid)
		}
	}
}

// lockedDown reports whether worker pid has its seccomp filter on: the
// last step before it reads a script.
func lockedDown(pid int) bool {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	return err == nil && bytes.Contains(st, []byte("\nSeccomp:\t2\n"))
}
