// Package testutil holds the helpers rex's tests share: loud skips for
// missing privileges or kernel features (turned into failures when
// REX_TEST_STRICT=1, as in CI), and building the real binaries once.
//
// Trust: test code only; never linked into a release binary.
package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// Strict reports whether skips must fail (CI sets REX_TEST_STRICT=1).
func Strict() bool { return os.Getenv("REX_TEST_STRICT") == "1" }

// Skip skips t with reason, or fails it in strict mode: a security test may
// never silently stop running in CI.
func Skip(t testing.TB, reason string) {
	t.Helper()
	if Strict() {
		t.Fatalf("REX_TEST_STRICT=1 forbids skipping: %s", reason)
	}
	t.Skip(reason)
}

// RequireRoot skips (or fails, in strict mode) unless running as root with
// REX_TEST_ROOT=1 or as root under CI.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Skip(t, "needs root (run as root with REX_TEST_ROOT=1)")
	}
}

// RequireUserns skips unless this process can create a user namespace.
func RequireUserns(t testing.TB) {
	t.Helper()
	cmd := exec.Command("/bin/true")
	cmd.SysProcAttr = usernsAttr()
	if err := cmd.Run(); err != nil {
		Skip(t, "cannot create user namespaces: "+err.Error())
	}
}

// RepoRoot returns the module root (the directory holding go.mod).
func RepoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
	buildLog  string
)

// Binaries builds rex-exec, rex-broker, rex-policy and the static
// rex-worker once per test process (through `make build` so tests use the
// exact release build) and returns the directory that holds them.
// REX_BIN_DIR points at prebuilt binaries instead.
func Binaries(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("REX_BIN_DIR"); d != "" {
		return d
	}
	buildOnce.Do(func() {
		root := RepoRoot(t)
		binDir = filepath.Join(root, "bin")
		cmd := exec.Command("make", "-s", "build")
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		buildErr, buildLog = err, string(out)
	})
	if buildErr != nil {
		t.Fatalf("make build: %v\n%s", buildErr, strings.TrimSpace(buildLog))
	}
	return binDir
}
