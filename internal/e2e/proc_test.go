package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rex-sh/rex/internal/testutil"
)

// N04: process operations against the broker, pid 1, another user's
// process and a recycled pid, through the real binaries.

// sleeper starts `sleep arg` (arg makes its command line unique), as uid
// when uid ≥ 0, and reaps it at the end of the test.
func sleeper(t *testing.T, arg string, uid int) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", arg)
	if uid >= 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
	}
	must(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

// alive says whether pid is still running (not a zombie).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] != "Z"
}

// ownSleepers lets root list everything and kill only the sleeps it owns
// whose command line starts with "sleep 6".
const ownSleepers = `
@id("list-all")
permit(principal, action in [process_system::Action::"list", process_system::Action::"list_fds"], resource);
@id("kill-own-sleep")
permit(principal, action in [process_system::Action::"kill", process_system::Action::"interrupt"], resource)
when { resource.name == "sleep" && principal has name && resource.username == principal.name && resource.command like "sleep 6*" };
`

func procRun(t *testing.T, script string) outcome {
	t.Helper()
	return netRun(t, nil, ownSleepers, script)
}

// TestN04_ProcessOps: a sleep the policy covers is signalled (through its
// pidfd) and its descriptors and lsof entry are visible; the broker itself,
// pid 1 and another user's sleep are not signalled.
func TestN04_ProcessOps(t *testing.T) {
	requireSandbox(t)
	testutil.RequireRoot(t) // starts a process as another user
	f, err := os.CreateTemp(t.TempDir(), "held")
	must(t, err)
	mine := exec.Command("sleep", "61.5")
	mine.Stdin = f
	must(t, mine.Start())
	f.Close() // only the sleep holds it now
	t.Cleanup(func() { _ = mine.Process.Kill(); _ = mine.Wait() })
	other := sleeper(t, "62.5", 65534)

	o := procRun(t, fmt.Sprintf(`broker := 0
for _, p := range proc.list() { if p.name == "rex-exec" { broker = p.pid } }
fds := proc.fds(%[1]d)
held := []
for _, h := range proc.lsof(%[2]q) { held.append(h.pid) }
out := {"fd0": fds[0].target, "held": held}
out["broker"] = try(func() { proc.kill(broker, "SIGTERM"); return "signalled" }, func(e) { return e.message() })
out["init"] = try(func() { proc.kill(1, "SIGKILL"); return "signalled" }, func(e) { return e.message() })
out["other"] = try(func() { proc.kill(%[3]d, "SIGKILL"); return "signalled" }, func(e) { return e.message() })
out["other_hup"] = try(func() { proc.kill(%[3]d, "HUP"); return "signalled" }, func(e) { return e.message() })
proc.kill(%[1]d, "SIGTERM")
out`, mine.Process.Pid, f.Name(), other.Process.Pid))
	wantStatus(t, o, "SUCCESS", "", 0)
	var got map[string]any
	must(t, json.Unmarshal(o.res.Output, &got))
	if got["fd0"] != f.Name() {
		t.Errorf("fds(sleep)[0] = %v, want %s", got["fd0"], f.Name())
	}
	if h, _ := got["held"].([]any); len(h) != 1 || h[0] != float64(mine.Process.Pid) {
		t.Errorf("lsof = %v, want [%d]", got["held"], mine.Process.Pid)
	}
	for _, k := range []string{"broker", "init", "other", "other_hup"} {
		if s, _ := got[k].(string); !strings.HasPrefix(s, "Permission denied") {
			t.Errorf("%s: %v, want a denial", k, got[k])
		}
	}
	if len(o.res.Denials) != 4 {
		t.Errorf("%d denials, want 4: %+v", len(o.res.Denials), o.res.Denials)
	}
	err = mine.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
		t.Errorf("the allowed sleep ended with %v, want SIGTERM", err)
	}
	if !alive(other.Process.Pid) {
		t.Error("another user's process was signalled")
	}
}

// TestN04_RecycledPid: a process is listed, exits, and its pid is given to
// a new process; killing with the listed process map (pid and start time)
// must not touch the newcomer.
func TestN04_RecycledPid(t *testing.T) {
	requireSandbox(t)
	testutil.RequireRoot(t) // steers pid allocation through ns_last_pid
	first := exec.Command("sleep", "63.1")
	must(t, first.Start())
	pid := first.Process.Pid
	o := procRun(t, fmt.Sprintf(`out := {}
for _, p := range proc.list() { if p.pid == %d { out = {"pid": p.pid, "start": p.start} } }
out`, pid))
	wantStatus(t, o, "SUCCESS", "", 0)
	listed := string(o.res.Output)
	_ = first.Process.Kill()
	_ = first.Wait()

	var second *exec.Cmd
	deadline := time.Now().Add(10 * time.Second)
	for second == nil && time.Now().Before(deadline) {
		if err := os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(pid-1)), 0); err != nil {
			t.Fatalf("ns_last_pid: %v", err)
		}
		c := exec.Command("sleep", "63.2")
		must(t, c.Start())
		if c.Process.Pid == pid {
			second = c
			break
		}
		_ = c.Process.Kill()
		_ = c.Wait()
	}
	if second == nil {
		t.Fatalf("could not get pid %d reused within 10 s", pid)
	}
	t.Cleanup(func() { _ = second.Process.Kill(); _ = second.Wait() })

	o = procRun(t, fmt.Sprintf(`proc.kill(%s, "SIGKILL")`, listed))
	wantStatus(t, o, "ERROR", "SCRIPT_EXCEPTION", 4)
	if !strings.Contains(o.res.Error.Message, "no such process") {
		t.Errorf("message %q", o.res.Error.Message)
	}
	time.Sleep(50 * time.Millisecond)
	if !alive(pid) {
		t.Fatal("the process that took the recycled pid was killed")
	}
}
