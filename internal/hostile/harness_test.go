package hostile

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rex-sh/rex/authz"
	"github.com/rex-sh/rex/broker"
	"github.com/rex-sh/rex/internal/testutil"
	"github.com/rex-sh/rex/ipc"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testutil.RemoveWorkers()
	os.Exit(code)
}

// env is one broker (a real broker.Runner, as rex-broker and standalone
// rex-exec use) that starts the evil worker, plus what the invariants of
// SECURITY-TESTS compare against.
type env struct {
	t        *testing.T
	runner   *broker.Runner
	bin      string
	policies *authz.PolicySet
	audit    *testutil.SyncBuffer
	log      *testutil.SyncBuffer
	sentinel string
	runIDs   []string
	// deniedInResults counts the denials the runs' results carry; each
	// must have its audit record.
	deniedInResults int
}

const sentinelText = "sentinel: no worker may read or change this\n"

// newEnv starts a broker for one test and registers the global invariant
// checks for its end.
func newEnv(t *testing.T) *env {
	t.Helper()
	if os.Geteuid() != 0 {
		testutil.RequireUserns(t)
	}
	bin := testutil.Worker(t, "rexevil")
	dir := t.TempDir()
	sentinel := filepath.Join(dir, "secret")
	if err := os.WriteFile(sentinel, []byte(sentinelText), 0o600); err != nil {
		t.Fatal(err)
	}
	ps, err := authz.LoadFiles([]authz.File{{Name: "hostile.cedar", Data: []byte(fmt.Sprintf(
		`@id("hostile-open") permit (principal, action == file_system::Action::"open", resource in file_system::Dir::%q);`,
		filepath.Join(dir, "granted")))}})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, bin: bin, policies: ps, audit: &testutil.SyncBuffer{}, log: &testutil.SyncBuffer{}, sentinel: sentinel}
	lim := broker.DefaultLimits
	lim.Timeout = 20 * time.Second
	lim.Pids = 128 // room for H11's 64 threads on top of the runtime's own
	// As rex-broker runs them, the workers make their own user namespace
	// when the host allows it; `make test` runs this suite a second time
	// with REX_TEST_SPAWN=legacy, the broker making it, as standalone
	// rex-exec and hosts without unprivileged user namespaces do.
	legacy := os.Getenv("REX_TEST_SPAWN") == "legacy"
	e.runner, err = broker.NewRunner(broker.Config{WorkerPath: bin, Limits: lim, Audit: e.audit, Log: e.log, WorkerUserns: !legacy})
	if err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 && !legacy && !e.runner.WorkerMakesUserns() && testutil.Strict() {
		t.Fatalf("the workers do not make their own user namespace on this host: %s", e.log.String())
	}
	// After NewRunner: its host.FS descriptors live as long as the broker.
	baseFDs, baseG := testutil.OpenFDs(t), runtime.NumGoroutine()
	t.Cleanup(func() { e.invariants(baseFDs, baseG) })
	return e
}

// run runs script on the evil worker and returns the result.
func (e *env) run(script string) *ipc.Result {
	e.t.Helper()
	return e.runFor(script, 0)
}

// runFor is run with a shorter time limit (0: the broker's).
func (e *env) runFor(script string, timeout time.Duration) *ipc.Result {
	e.t.Helper()
	res := e.runner.Run(context.Background(), &broker.Job{
		Principal: authz.Principal{Name: "mallory", UID: 4343}, Policies: e.policies,
		Script: []byte(script), ScriptName: "evil", Timeout: timeout,
	})
	e.record(res)
	return res
}

func (e *env) record(res *ipc.Result) {
	e.runIDs = append(e.runIDs, res.RunID)
	e.deniedInResults += len(res.Denials)
}

// report is the evil worker's view from inside (cmd/rex-worker/run_evil.go).
type report struct {
	Hostname   string                    `json:"hostname"`
	Domainname string                    `json:"domainname"`
	UID        int                       `json:"uid"`
	Cwd        string                    `json:"cwd"`
	OpenErrno  int                       `json:"open_errno"`
	SockErrno  int                       `json:"socket_errno"`
	FDs        []fdInfo                  `json:"fds"`
	Env        []string                  `json:"env"`
	Raw        int                       `json:"raw_errno"`
	RawList    []int                     `json:"raw_list"`
	Paths      map[string]map[string]int `json:"paths"`
	Threads    *struct {
		Threads int      `json:"threads"`
		Bad     []string `json:"bad"`
	} `json:"threads"`
}

type fdInfo struct {
	FD      int    `json:"fd"`
	Type    string `json:"type"`
	Flags   int    `json:"flags"`
	Cloexec bool   `json:"cloexec"`
}

// probe runs script and decodes the report; the run must have succeeded.
func (e *env) probe(script string) *report {
	e.t.Helper()
	return e.decode(e.run(script))
}

// decode reads the report of a successful run.
func (e *env) decode(res *ipc.Result) *report {
	e.t.Helper()
	if res.Status != ipc.StatusSuccess {
		e.t.Fatalf("status %s, error %+v", res.Status, res.Error)
	}
	var r report
	if err := json.Unmarshal([]byte(res.Stdout), &r); err != nil {
		e.t.Fatalf("report %q: %v", res.Stdout, err)
	}
	return &r
}

// killedBySeccomp says whether the run ended with the worker killed by
// SIGSYS, as the broker classified it.
func killedBySeccomp(res *ipc.Result) bool {
	return res.Status == ipc.StatusError && res.Error != nil && strings.Contains(res.Error.Message, "seccomp")
}

// outcome runs one raw syscall in its own worker and says what happened:
// "SIGSYS", or the errno name.
func (e *env) outcome(nr uintptr, args ...uintptr) string {
	e.t.Helper()
	script := fmt.Sprintf("raw %d", nr)
	for _, a := range args {
		script += fmt.Sprintf(" %d", a)
	}
	return e.describe(e.run(script))
}

func (e *env) describe(res *ipc.Result) string {
	e.t.Helper()
	if killedBySeccomp(res) {
		return "SIGSYS"
	}
	if res.Status != ipc.StatusSuccess {
		e.t.Fatalf("status %s, error %+v", res.Status, res.Error)
	}
	var r report
	if err := json.Unmarshal([]byte(res.Stdout), &r); err != nil {
		e.t.Fatal(err)
	}
	return errnoName(r.Raw)
}

func errnoName(n int) string {
	if n == 0 {
		return "ok"
	}
	if n < 0 {
		n = -n
	}
	return unix.ErrnoName(syscall.Errno(n))
}

// held runs script (which must hold the worker, e.g. "threads N MS") in the
// background and returns the worker's pid once it is ready, and a function
// that waits for the result.
func (e *env) held(script string) (int, func() *ipc.Result) {
	e.t.Helper()
	before := map[int]bool{}
	for _, p := range children() {
		before[p] = true
	}
	done := make(chan *ipc.Result, 1)
	go func() {
		done <- e.runner.Run(context.Background(), &broker.Job{
			Principal: authz.Principal{Name: "mallory", UID: 4343}, Policies: e.policies,
			Script: []byte(script), ScriptName: "evil",
		})
	}()
	wait := func() *ipc.Result {
		res := <-done
		e.record(res)
		return res
	}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		for _, p := range children() {
			if before[p] {
				continue
			}
			// Ready once locked down: seccomp mode 2.
			if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p)); err == nil && strings.Contains(string(st), "\nSeccomp:\t2\n") {
				return p, wait
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	wait()
	e.t.Fatal("no locked-down worker appeared within 15 s")
	return 0, nil
}

// children lists this process's child pids.
func children() []int {
	var out []int
	self := strconv.Itoa(os.Getpid())
	ents, _ := os.ReadDir("/proc")
	for _, ent := range ents {
		if _, err := strconv.Atoi(ent.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + ent.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i > 0 {
			f := strings.Fields(s[i+1:])
			if len(f) > 1 && f[1] == self {
				pid, _ := strconv.Atoi(ent.Name())
				out = append(out, pid)
			}
		}
	}
	return out
}

// invariants are the global ones of SECURITY-TESTS, checked after every
// hostile test: the broker still serves; no descriptor, goroutine, worker
// process, cgroup or mount of these runs is left; every denial has its
// audit record and every run its start and end records; no panic; the
// sentinel is untouched.
func (e *env) invariants(baseFDs, baseG int) {
	t := e.t
	t.Helper()
	if res := e.run("report"); res.Status != ipc.StatusSuccess {
		t.Errorf("broker no longer serves a benign run: %+v", res.Error)
	}
	e.runner.Wait()
	var fds, g int
	for i := 0; i < 100; i++ {
		fds, g = testutil.OpenFDs(t), runtime.NumGoroutine()
		if fds <= baseFDs && g <= baseG {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if fds > baseFDs {
		t.Errorf("broker descriptor leak: %d open, baseline %d", fds, baseFDs)
	}
	if g > baseG {
		t.Errorf("broker goroutine leak: %d, baseline %d", g, baseG)
	}
	if pids := testutil.ProcessesOf(e.bin); len(pids) != 0 {
		t.Errorf("worker processes left: %v", pids)
	}
	for _, id := range e.runIDs {
		for _, dir := range []string{"/sys/fs/cgroup/rex", "/sys/fs/cgroup/memory/rex", "/sys/fs/cgroup/pids/rex"} {
			if _, err := os.Stat(filepath.Join(dir, "run-"+id)); err == nil {
				t.Errorf("cgroup %s/run-%s left behind", dir, id)
			}
		}
	}
	if mi, err := os.ReadFile("/proc/self/mountinfo"); err == nil && strings.Contains(string(mi), filepath.Dir(e.bin)) {
		t.Errorf("a mount of the worker's directory is left in the broker's namespace")
	}
	starts, ends, denies := 0, 0, 0
	sc := bufio.NewScanner(strings.NewReader(e.audit.String()))
	for sc.Scan() {
		var rec broker.AuditRecord
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Errorf("audit line %q: %v", sc.Text(), err)
			continue
		}
		switch {
		case rec.Event == "run_start":
			starts++
		case rec.Event == "run_end":
			ends++
		case rec.Decision == "deny":
			denies++
		}
	}
	if starts != len(e.runIDs) || ends != len(e.runIDs) {
		t.Errorf("%d runs but %d run_start and %d run_end audit records", len(e.runIDs), starts, ends)
	}
	if denies != e.deniedInResults {
		t.Errorf("%d denials in results but %d deny audit records", e.deniedInResults, denies)
	}
	if strings.Contains(e.log.String(), "panic") {
		t.Errorf("broker logged a panic:\n%s", e.log.String())
	}
	if b, err := os.ReadFile(e.sentinel); err != nil || string(b) != sentinelText {
		t.Errorf("sentinel changed: %q %v", b, err)
	}
}
