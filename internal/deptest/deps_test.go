// Package deptest enforces rex's import rules (CONVENTIONS §1): the
// untrusted side never links the trusted side's code, the broker never links
// the script interpreter, and ipc stands alone.
package deptest

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/rex-sh/rex/internal/testutil"
)

const mod = "github.com/rex-sh/rex/"

func deps(t *testing.T, pkg string, flags ...string) []string {
	t.Helper()
	cmd := exec.Command("go", append(append([]string{"list", "-deps", "-test=false"}, flags...), mod+pkg)...)
	cmd.Dir = testutil.RepoRoot(t)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

// under reports whether package d is f or inside f.
func under(d, f string) bool { return d == f || strings.HasPrefix(d, f+"/") }

func TestImportRules(t *testing.T) {
	rules := []struct {
		pkg       string
		forbidden []string
	}{
		{"worker", []string{mod + "broker", mod + "authz"}},
		{"sdk", []string{mod + "broker", mod + "authz"}},
		{"cmd/rex-worker", []string{mod + "broker", mod + "authz"}},
		{"broker", []string{"github.com/risor-io/risor", mod + "sdk", mod + "worker"}},
		{"authz", []string{mod + "ipc", mod + "broker", mod + "sdk", mod + "worker", "github.com/risor-io/risor"}},
		{"cmd/rex-broker", []string{"github.com/risor-io/risor", mod + "sdk", mod + "worker"}},
		{"cmd/rex-exec", []string{"github.com/risor-io/risor", mod + "sdk", mod + "worker"}},
	}
	for _, r := range rules {
		for _, d := range deps(t, r.pkg) {
			for _, f := range r.forbidden {
				if under(d, f) {
					t.Errorf("%s must not depend on %s (it pulls in %s)", r.pkg, f, d)
				}
			}
		}
	}
	// ipc is the protocol only: it imports no other rex package.
	for _, d := range deps(t, "ipc") {
		if strings.HasPrefix(d, mod) && d != mod+"ipc" {
			t.Errorf("ipc must not depend on %s", d)
		}
	}
}

// The client build of rex-exec, what agents start once per script, links
// the protocol and nothing of the engine: no broker, no Cedar, no HTTP or
// TLS stack (their initialisation is what made it start slowly).
func TestClientBuildIsThin(t *testing.T) {
	forbidden := []string{mod + "broker", mod + "authz", mod + "sdk", mod + "worker",
		"github.com/cedar-policy/cedar-go", "github.com/risor-io/risor", "net/http", "crypto/tls"}
	for _, d := range deps(t, "cmd/rex-exec", "-tags", "rexthin,netgo,osusergo") {
		for _, f := range forbidden {
			if under(d, f) {
				t.Errorf("the rex-exec client build must not depend on %s (it pulls in %s)", f, d)
			}
		}
	}
}
