package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Hostile marks one row of the SECURITY-TESTS table in the test log. The
// `make hostile` report (internal/hostile/cmd/report) reads these lines
// from `go test -json` and pairs them with the test's pass/fail outcome, so
// every row it prints was observed by a test that could fail.
func Hostile(t testing.TB, id, attack, expected, observed string) {
	t.Helper()
	clean := func(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "\t", " "), "\n", " ") }
	t.Logf("HOSTILE\t%s\t%s\t%s\t%s", clean(id), clean(attack), clean(expected), clean(observed))
}

// Long reports whether the long versions of races and floods should run
// (REX_HOSTILE_LONG=1); `make test` keeps them short.
func Long() bool { return os.Getenv("REX_HOSTILE_LONG") == "1" }

// Scale returns short, or long when Long() is set.
func Scale(short, long int) int {
	if Long() {
		return long
	}
	return short
}

var workerBuilds sync.Map // tags → *workerBuild

type workerBuild struct {
	once sync.Once
	path string
	err  error
}

// WorkerBuildArgs are the go build flags of rex-worker as the Makefile
// gives them, tags last: on amd64 the link names the worker's own entry
// point (cmd/rex-worker/entry_amd64.s). CGO_ENABLED=0 goes in the
// environment.
func WorkerBuildArgs(tags string) []string {
	var args []string
	if runtime.GOARCH == "amd64" {
		args = append(args, "-ldflags=-E=main.rexEntry")
	}
	return append(args, "-tags", tags)
}

// Worker builds rex-worker statically (as the Makefile does) with the extra
// build tags, once per test process, into a directory every uid can
// traverse, since the worker runs as an unprivileged uid. tags "rexevil"
// gives the evil worker: the release sandbox with probes instead of Risor.
// TestMain removes the builds with RemoveWorkers.
func Worker(t testing.TB, tags string) string {
	t.Helper()
	v, _ := workerBuilds.LoadOrStore(tags, &workerBuild{})
	b := v.(*workerBuild)
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "rex-worker-"+strings.ReplaceAll(tags, ",", "-")+"-")
		if err == nil {
			err = os.Chmod(dir, 0o755)
		}
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, "rex-worker")
		allTags := "netgo,osusergo"
		if tags != "" {
			allTags = tags + "," + allTags
		}
		args := append([]string{"build", "-o", b.path}, WorkerBuildArgs(allTags)...)
		cmd := exec.Command("go", append(args, "./cmd/rex-worker")...)
		cmd.Dir = RepoRoot(t)
		// As the Makefile: static, and without cgo, which the worker's
		// all-threads lock-down requires.
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("%v: %s", err, out)
		}
	})
	if b.err != nil {
		t.Fatalf("build rex-worker (tags %q): %v", tags, b.err)
	}
	return b.path
}

// RemoveWorkers deletes every worker built by Worker; call it from TestMain.
func RemoveWorkers() {
	workerBuilds.Range(func(_, v any) bool {
		if p := v.(*workerBuild).path; p != "" {
			os.RemoveAll(filepath.Dir(p))
		}
		return true
	})
}

// OpenFDs counts this process's open descriptors.
func OpenFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("count fds: %v", err)
	}
	return len(ents) - 1 // the directory's own descriptor
}

// ProcessesOf lists the pids whose executable is exe (processes left
// behind by a run show up here).
func ProcessesOf(exe string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if l, err := os.Readlink("/proc/" + e.Name() + "/exe"); err == nil && strings.TrimSuffix(l, " (deleted)") == exe {
			pids = append(pids, pid)
		}
	}
	return pids
}
