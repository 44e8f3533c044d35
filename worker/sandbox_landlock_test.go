package worker

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/rex-sh/rex/internal/testutil"
	"golang.org/x/sys/unix"
)

const landlockHelperEnv = "REX_LANDLOCK_HELPER"

// landlockHelper runs in a child: it applies the stage-one ruleset with the
// static worker binary as the one executable file, then checks on the same
// thread that other files cannot be opened or executed and that the
// allowed binary still execs. It returns only on failure.
func landlockHelper(allowed string) error {
	runtime.LockOSThread()
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return err
	}
	exe, err := unix.Open(allowed, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	other, err := unix.Open("/bin/true", unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	if err := restrictLandlock(exe); err != nil {
		return err
	}
	if _, err := unix.Open("/etc/hostname", unix.O_RDONLY, 0); !errors.Is(err, unix.EACCES) {
		return fmt.Errorf("open /etc/hostname under Landlock: %v, want EACCES", err)
	}
	if err := execFD(other, []string{"true"}, nil); !errors.Is(err, unix.EACCES) {
		return fmt.Errorf("exec /bin/true under Landlock: %v, want EACCES", err)
	}
	// rex-worker run by hand exits with ExitUsage: proof that it started.
	return execFD(exe, []string{"rex-worker"}, nil)
}

func TestLandlockAllowsOnlyOwnBinary(t *testing.T) {
	if _, err := LandlockABI(); err != nil {
		testutil.Skip(t, "kernel without Landlock: "+err.Error())
	}
	bin := evilWorker(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), landlockHelperEnv+"="+bin)
	out, _ := cmd.CombinedOutput()
	if got := cmd.ProcessState.ExitCode(); got != ExitUsage || !strings.Contains(string(out), "not by hand") {
		t.Fatalf("exit %d, want rex-worker's %d; output: %s", got, ExitUsage, out)
	}
}
