package main

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"testing"

	"github.com/rex-sh/rex/internal/testutil"
	"github.com/rex-sh/rex/worker"
)

// The worker as built for release starts at rexEntry, not at the Go
// runtime's entry: otherwise every thread would get its bounding set,
// securebits and no_new_privs through AllThreadsSyscall, correct but slow,
// and nothing else would notice.
func TestWorkerStartsAtItsEntryPoint(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("the worker has its own entry point on amd64 only")
	}
	bin := filepath.Join(t.TempDir(), "rex-worker")
	args := append([]string{"build", "-o", bin}, testutil.WorkerBuildArgs("netgo,osusergo")...)
	cmd := exec.Command("go", append(args, ".")...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	for _, path := range []string{bin, os.Getenv("REX_BIN_DIR") + "/rex-worker"} {
		if path == "/rex-worker" {
			continue // not under make test
		}
		f, err := elf.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		syms, err := f.Symbols()
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		// The assembly body is main.rexEntry.abi0 when the compiler also
		// made a Go-ABI wrapper named main.rexEntry.
		addr := map[string]uint64{}
		for _, s := range syms {
			addr[s.Name] = s.Value
		}
		want, ok := addr["main.rexEntry.abi0"]
		if !ok {
			want, ok = addr["main.rexEntry"]
		}
		if !ok || want != f.Entry {
			t.Errorf("%s: entry %#x, rexEntry's body at %#x (found %v)", path, f.Entry, want, ok)
		}
	}
}

// The entry point sets the same securebits as the worker checks.
func TestEntrySecureBits(t *testing.T) {
	src, err := os.ReadFile("entry_amd64.s")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`MOVQ\s+\$(0x[0-9a-f]+), R13\s+// worker\.SecureBits`).FindSubmatch(src)
	if m == nil {
		t.Fatal("no securebits operand in entry_amd64.s")
	}
	v, err := strconv.ParseUint(string(m[1]), 0, 64)
	if err != nil || v != worker.SecureBits {
		t.Errorf("entry point sets securebits %s, worker.SecureBits is %#x", m[1], worker.SecureBits)
	}
}
