package worker

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/rex-sh/rex/internal/testutil"
	"golang.org/x/sys/unix"
)

const landlockHelperEnv = "REX_LANDLOCK_HELPER"

// landlockHelper runs in a child built without cgo. It applies the
// worker's ruleset with threads already running, then checks on each of
// them, on the main thread and on threads started afterwards that no file
// can be opened or executed.
func landlockHelper() error {
	runtime.LockOSThread()
	if err := allThreads(unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0); err != nil {
		return err
	}
	check := func() error {
		if _, err := unix.Open("/etc/hostname", unix.O_RDONLY, 0); !errors.Is(err, unix.EACCES) {
			return fmt.Errorf("open /etc/hostname: %v, want EACCES", err)
		}
		// Were exec allowed, this would replace the helper and its "ok".
		if err := unix.Exec("/bin/true", []string{"true"}, nil); !errors.Is(err, unix.EACCES) {
			return fmt.Errorf("exec /bin/true: %v, want EACCES", err)
		}
		return nil
	}
	// onThreads runs check on n goroutines, each locked to its own thread
	// for as long as all of them run, so that the threads are n distinct
	// ones; start runs before the checks, once every thread is up.
	onThreads := func(n int, start func() error) error {
		ready, release, errs := make(chan struct{}), make(chan struct{}), make(chan error, n)
		for i := 0; i < n; i++ {
			go func() {
				runtime.LockOSThread()
				ready <- struct{}{}
				<-release
				errs <- check()
			}()
		}
		for i := 0; i < n; i++ {
			<-ready
		}
		if err := start(); err != nil {
			close(release)
			return err
		}
		close(release)
		for i := 0; i < n; i++ {
			if err := <-errs; err != nil {
				return err
			}
		}
		return nil
	}
	// Threads running before the domain is applied.
	if err := onThreads(8, restrictLandlock); err != nil {
		return err
	}
	// Threads started after it, and the main thread.
	if err := onThreads(8, func() error { return nil }); err != nil {
		return err
	}
	return check()
}

// TestLandlockEveryThread: the worker's ruleset binds every thread of the
// process, those running when it is applied and those started later, and
// grants nothing: no thread can open or execute a file.
func TestLandlockEveryThread(t *testing.T) {
	if _, err := LandlockABI(); err != nil {
		testutil.Skip(t, "kernel without Landlock: "+err.Error())
	}
	// syscall.AllThreadsSyscall refuses in a binary with cgo, as this test
	// binary may be: the helper is this package's tests built without,
	// as rex-worker is.
	bin := filepath.Join(t.TempDir(), "worker.test")
	build := exec.Command("go", "test", "-c", "-o", bin, "-tags", "netgo,osusergo", ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the helper: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), landlockHelperEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "landlock helper: ok") {
		t.Fatalf("helper: %v\n%s", err, out)
	}
}
