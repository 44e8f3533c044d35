package seccomp

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"testing"

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
