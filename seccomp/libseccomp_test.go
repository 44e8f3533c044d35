//go:build cgo

package seccomp

// The tests that need libseccomp, the profile's compiler: cgo only, so
// that the probes' children, this package's tests built without cgo (see
// helperBinary), leave them out.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/rex-sh/rex/internal/testutil"
	libseccomp "github.com/seccomp/libseccomp-golang"
)

// Build turns a profile into a libseccomp filter for the native
// architecture only, with pid in place of SelfPID: a call made through another ABI (i386 int 0x80, or an
// x32 number with bit 30 set) hits the bad-arch action and kills the
// process. The default action is KillProcess. TSYNC and no_new_privs are
// set, so Load applies the filter to every thread of the process. It loads
// nothing; the caller releases the filter.
func Build(p []Rule, pid uint64) (*libseccomp.ScmpFilter, error) {
	f, err := libseccomp.NewFilter(libseccomp.ActKillProcess)
	if err != nil {
		return nil, fmt.Errorf("seccomp: new filter: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			f.Release()
		}
	}()
	if err := f.SetBadArchAction(libseccomp.ActKillProcess); err != nil {
		return nil, fmt.Errorf("seccomp: bad-arch action: %w", err)
	}
	if err := f.SetNoNewPrivsBit(true); err != nil {
		return nil, fmt.Errorf("seccomp: no_new_privs: %w", err)
	}
	// NewFilter asks for TSYNC but tolerates a kernel without it; rex does
	// not: a thread left unfiltered is a thread the script can reach.
	if api, err := libseccomp.GetAPI(); err != nil || api < 2 {
		return nil, fmt.Errorf("seccomp: libseccomp API level %d lacks TSYNC (%v)", api, err)
	}
	for _, r := range p {
		if r.Action == KillProcess {
			continue // the default action already
		}
		nr, err := libseccomp.GetSyscallFromName(r.Name)
		if err != nil {
			return nil, fmt.Errorf("seccomp: syscall %q: %w", r.Name, err)
		}
		act := libseccomp.ActAllow
		if r.Action == Errno {
			act = libseccomp.ActErrno.SetReturnCode(int16(r.Errno))
		}
		if len(r.Args) == 0 {
			err = f.AddRuleExact(nr, act)
		} else {
			var conds []libseccomp.ScmpCondition
			for _, c := range r.Args {
				v := c.Value
				if v == SelfPID {
					v = pid
				}
				var sc libseccomp.ScmpCondition
				switch c.Op {
				case Eq:
					sc, err = libseccomp.MakeCondition(c.Arg, libseccomp.CompareEqual, v)
				case MaskedEq:
					sc, err = libseccomp.MakeCondition(c.Arg, libseccomp.CompareMaskedEqual, c.Mask, v)
				default:
					err = fmt.Errorf("unknown op %d", c.Op)
				}
				if err != nil {
					return nil, fmt.Errorf("seccomp: %s arg %d: %w", r.Name, c.Arg, err)
				}
				conds = append(conds, sc)
			}
			err = f.AddRuleConditionalExact(nr, act, conds)
		}
		if err != nil {
			return nil, fmt.Errorf("seccomp: rule %s: %w", r.Name, err)
		}
	}
	ok = true
	return f, nil
}

// compile is the BPF program libseccomp makes of the worker profile for pid.
func compile(t *testing.T, pid uint64) []byte {
	t.Helper()
	f, err := Build(Profile(), pid)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Release()
	return export(t, f.ExportBPF)
}

func encode(prog []sockFilter) []byte {
	var b bytes.Buffer
	for _, ins := range prog {
		_ = binary.Write(&b, binary.NativeEndian, ins)
	}
	return b.Bytes()
}

// TestCompiledProgram: the program the worker installs is libseccomp's
// compilation of the profile, and patching in a pid gives what libseccomp
// makes for that pid. After a change to profile.go, regenerate with
// REX_UPDATE_SECCOMP=1 go test ./seccomp -run TestCompiledProgram.
func TestCompiledProgram(t *testing.T) {
	want := compile(t, placeholderPID)
	path := "program_" + runtime.GOARCH + ".bpf"
	if os.Getenv("REX_UPDATE_SECCOMP") == "1" {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d instructions)", path, len(want)/8)
		return
	}
	if !bytes.Equal(compiled, want) {
		t.Fatalf("%s is not the compiled profile (profile.go changed?): regenerate with REX_UPDATE_SECCOMP=1 go test ./seccomp -run TestCompiledProgram", path)
	}
	for _, pid := range []uint64{1, 2, 300, 1 << 22, uint64(os.Getpid())} {
		prog, err := program(int(pid))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := encode(prog), compile(t, pid); !bytes.Equal(got, want) {
			t.Errorf("program patched for pid %d differs from libseccomp's for that pid", pid)
		}
	}
}

// anyProbe is the probe spec that makes syscall name with bad arguments.
func anyProbe(t *testing.T, name string) string {
	t.Helper()
	nr, err := libseccomp.GetSyscallFromName(name)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return fmt.Sprintf("any:%s:%d", name, nr)
}

func TestSeccompProfileCheck(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		testutil.Skip(t, "the probes are written for amd64 syscall numbers")
	}
	var allowed, errnoRules []string
	errnos := map[string]syscall.Errno{}
	for _, r := range Profile() {
		switch r.Action {
		case Allow:
			if !slices.Contains(allowed, r.Name) {
				allowed = append(allowed, r.Name)
			}
		case Errno:
			if !slices.Contains(errnoRules, r.Name) {
				errnoRules = append(errnoRules, r.Name)
			}
			errnos[r.Name] = r.Errno
		}
	}
	for _, name := range allowed {
		probes := allowedProbes[name]
		if len(probes) == 0 {
			t.Errorf("allowed syscall %s has no probe in allowedProbes", name)
		}
		for i := range probes {
			t.Run("allow/"+name, func(t *testing.T) {
				t.Parallel()
				if o := runProbe(t, fmt.Sprintf("allow:%s:%d", name, i)); o.killed {
					t.Fatalf("allowed syscall %s (probe %d) killed by the filter", name, i)
				}
			})
		}
	}
	for _, name := range errnoRules {
		t.Run("errno/"+name, func(t *testing.T) {
			t.Parallel()
			o := runProbe(t, anyProbe(t, name))
			if o.killed || o.errno != errnos[name] {
				t.Fatalf("%s: killed %v, errno %v; want %v from the filter", name, o.killed, o.errno, errnos[name])
			}
		})
	}
	for _, name := range h09 {
		t.Run("kill/"+name, func(t *testing.T) {
			t.Parallel()
			if o := runProbe(t, anyProbe(t, name)); !o.killed {
				t.Fatalf("%s not killed: %q", name, o.out)
			}
		})
	}
	// Parallel subtests finish before cleanups run: the row is written
	// once they all have, and the table takes PASS/FAIL from the test.
	t.Cleanup(func() {
		testutil.Hostile(t, "S01", "seccomp profile check: every allowed syscall made under the filter; every errno rule; every H09 syscall; arch and x32 checks",
			"allowed ones run, errno rules answer their errno, H09 killed; bad arch and x32 killed",
			fmt.Sprintf("%d allowed syscalls probed under the filter, %d errno rules, %d H09 syscalls; arch + x32 checks: TestFilterChecksArch (BPF) and hostile H06 (live x32 and int 0x80)",
				len(allowed), len(errnoRules), len(h09)))
	})
}

// TestProfileIsWellFormed checks the data itself: every syscall name is
// known to libseccomp on this arch, every rule says why, errno rules carry
// an errno, and nothing dangerous is allowed by mistake.
func TestProfileIsWellFormed(t *testing.T) {
	neverAllowed := map[string]bool{
		"execve": true, "execveat": true, "ptrace": true, "mount": true, "unshare": true,
		"setns": true, "bpf": true, "io_uring_setup": true, "io_uring_enter": true,
		"io_uring_register": true, "perf_event_open": true, "userfaultfd": true, "keyctl": true,
		"socket": true, "connect": true, "open": true, "openat": true, "openat2": true,
		"chroot": true, "pivot_root": true, "kexec_load": true, "init_module": true,
		"finit_module": true, "personality": true, "modify_ldt": true, "process_vm_readv": true,
		"process_vm_writev": true, "pidfd_getfd": true, "memfd_create": true, "clone3": true,
	}
	for i, r := range Profile() {
		if strings.TrimSpace(r.Why) == "" {
			t.Errorf("rule %d (%s) has no why", i, r.Name)
		}
		if r.Action == Errno && r.Errno == 0 {
			t.Errorf("rule %s: errno action without errno", r.Name)
		}
		if r.Action == Allow && neverAllowed[r.Name] {
			t.Errorf("rule %s allows a syscall that must never be allowed", r.Name)
		}
		if r.Name == "clone" && (r.Action != Allow || len(r.Args) != 1 || r.Args[0].Op != MaskedEq) {
			t.Errorf("clone must be allowed only with a flag mask")
		}
	}
	f, err := Build(Profile(), placeholderPID)
	if err != nil {
		t.Fatal(err)
	}
	f.Release()
}

// TestFilterChecksArch inspects the generated filter: it must compare the
// audit arch with x86_64 and kill anything else, and the BPF must reject x32
// numbers (bit 30) before matching any rule, since libseccomp shows that
// check only in the BPF, not in the PFC text.
func TestFilterChecksArch(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("the arch check below is written for amd64")
	}
	f, err := Build(Profile(), placeholderPID)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Release()
	pfc := string(export(t, f.ExportPFC))
	for _, want := range []string{
		"# filter for arch x86_64 (3221225534)\nif ($arch == 3221225534)",
		"# invalid architecture action\naction KILL_PROCESS;",
		"# default action\n  action KILL_PROCESS;",
	} {
		if !strings.Contains(pfc, want) {
			t.Errorf("PFC lacks %q:\n%s", want, pfc)
		}
	}
	if strings.Contains(pfc, "filter for arch x32") || strings.Contains(pfc, "filter for arch x86 ") {
		t.Errorf("filter has rules for a non-native arch:\n%s", pfc)
	}

	prog := export(t, f.ExportBPF)
	const jgeK = 0x05 | 0x30 | 0x00 // BPF_JMP | BPF_JGE | BPF_K
	found := false
	for i := 0; i+8 <= len(prog); i += 8 {
		code := uint16(prog[i]) | uint16(prog[i+1])<<8
		k := uint32(prog[i+4]) | uint32(prog[i+5])<<8 | uint32(prog[i+6])<<16 | uint32(prog[i+7])<<24
		if code == jgeK && k == x32SyscallBit {
			found = true
			break
		}
	}
	if !found {
		t.Error("BPF has no x32 (syscall >= 0x40000000) check")
	}
}

// export collects what an libseccomp export function writes to a file
// (libseccomp 2.5 has no in-memory export).
func export(t *testing.T, fn func(*os.File) error) []byte {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	done := make(chan []byte)
	go func() { b, _ := io.ReadAll(r); done <- b }()
	err = fn(w)
	w.Close()
	b := <-done
	if err != nil {
		t.Fatal(err)
	}
	return b
}
