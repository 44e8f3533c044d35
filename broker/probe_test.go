package broker

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rex-sh/rex/internal/testutil"
)

func TestProbeAllLayersOnThisHost(t *testing.T) {
	testutil.RequireRoot(t)
	var out bytes.Buffer
	if code := Doctor(&out, Probe()); code != 0 {
		t.Fatalf("doctor exit %d on the CI host:\n%s", code, out.String())
	}
	if n := strings.Count(out.String(), "\n"); n != len(Layers()) {
		t.Errorf("doctor printed %d lines for %d layers:\n%s", n, len(Layers()), out.String())
	}
}

// The seccomp probe loads its filter into a thread that dies with it:
// afterwards no thread of this process has a filter or no_new_privs.
func TestProbeSeccompLeavesNoFilter(t *testing.T) {
	for i := 0; i < 5; i++ {
		if st, detail := probeSeccomp(); st != LayerOK {
			testutil.Skip(t, "seccomp unavailable: "+detail)
		}
	}
	time.Sleep(50 * time.Millisecond)
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		b, err := os.ReadFile(filepath.Join("/proc/self/task", task.Name(), "status"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) == 2 && (f[0] == "Seccomp:" || f[0] == "NoNewPrivs:") && f[1] != "0" {
				t.Errorf("thread %s: %s", task.Name(), line)
			}
		}
	}
}

func TestProbeMissingHookAndGaps(t *testing.T) {
	t.Setenv(ProbeMissingEnv, "landlock, seccomp")
	res := Probe()
	byName := map[string]LayerResult{}
	for _, r := range res {
		byName[r.Name] = r
	}
	for _, n := range []string{"landlock", "seccomp"} {
		if byName[n].Status != LayerMissing {
			t.Errorf("%s: %s, want missing", n, byName[n].Status)
		}
	}
	refused, accepted, err := Gaps(res, []string{"seccomp"})
	if err != nil {
		t.Fatal(err)
	}
	if !contains(refused, "landlock") || contains(refused, "seccomp") || !contains(accepted, "seccomp") {
		t.Errorf("refused %v accepted %v", refused, accepted)
	}
	if _, _, err := Gaps(res, []string{"seccom"}); err == nil {
		t.Error("a misspelt --allow-degraded layer was accepted")
	}
	var out bytes.Buffer
	if code := Doctor(&out, res); code != 1 || !strings.Contains(out.String(), "fix: enable CONFIG_SECCOMP_FILTER") {
		t.Errorf("doctor exit %d:\n%s", code, out.String())
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// The janitor removes the groups still live when the broker's pipe closes
// and leaves those the broker removed; the sweep removes only old groups.
func TestCgroupJanitorAndSweep(t *testing.T) {
	old := cgroupRoot
	cgroupRoot = t.TempDir()
	defer func() { cgroupRoot = old }()
	mk := func(parts ...string) string {
		d := filepath.Join(append([]string{cgroupRoot}, parts...)...)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	live, done := mk("memory", "rex", "run-a"), mk("pids", "rex", "run-b")
	outside := mk("memory", "other", "run-c")
	var feed bytes.Buffer
	hook := JanitorFeed(&feed)
	hook([]string{live, done}, true)
	hook([]string{done}, false)
	feed.WriteString("+" + outside + "\n+" + live + "/../../other\n")
	if err := os.Remove(done); err != nil {
		t.Fatal(err)
	}
	keep := mk("pids", "rex", "run-b")
	CgroupJanitor(&feed)
	if _, err := os.Stat(live); err == nil {
		t.Error("live group not removed")
	}
	for _, d := range []string{keep, outside} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s removed: %v", d, err)
		}
	}

	young, aged := mk("rex", "run-young"), mk("rex", "run-aged")
	past := time.Now().Add(-2 * time.Minute)
	if err := os.Chtimes(aged, past, past); err != nil {
		t.Fatal(err)
	}
	if n := SweepCgroups(); n != 1 {
		t.Errorf("sweep removed %d groups, want only the old one", n)
	}
	if _, err := os.Stat(aged); err == nil {
		t.Error("old empty group not swept")
	}
	if _, err := os.Stat(young); err != nil {
		t.Error("young group swept")
	}
}

// remove empties a run's group that still holds a process (a worker's
// descendant would be one) before it deletes it: the process is killed and
// every directory goes.
func TestCgroupRemoveKillsWhatIsLeft(t *testing.T) {
	testutil.RequireRoot(t)
	mode := detectCgroups()
	if mode == cgroupNone {
		testutil.Skip(t, "no writable cgroup hierarchy with memory and pids")
	}
	cg, err := newCgroup(mode, "run-test-"+randSuffixForTest(), 64<<20, 16)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		cg.remove()
		t.Fatal(err)
	}
	if err := cg.add(cmd.Process.Pid); err != nil {
		_ = cmd.Process.Kill()
		cg.remove()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }() // reaped as it dies, as a worker is
	cg.remove()
	select {
	case err := <-done:
		if err == nil {
			t.Error("the process in the group exited 0: it was not killed")
		}
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("the process in the group is still running")
	}
	for _, d := range cg.dirs {
		if _, err := os.Stat(d); err == nil {
			t.Errorf("%s left behind", d)
		}
	}
}

func randSuffixForTest() string { return newRunID() }
