package seccomp

import (
	"fmt"
	"os"

	libseccomp "github.com/seccomp/libseccomp-golang"
)

// Build turns a profile into a libseccomp filter for the native
// architecture only: a call made through another ABI (i386 int 0x80, or an
// x32 number with bit 30 set) hits the bad-arch action and kills the
// process. The default action is KillProcess. TSYNC and no_new_privs are
// set, so Load applies the filter to every thread of the process. It loads
// nothing; the caller releases the filter.
func Build(p []Rule) (*libseccomp.ScmpFilter, error) {
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
	pid := uint64(os.Getpid())
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

// Install builds the worker profile and loads it on every thread of the
// calling process. After it returns, the process can no longer open files,
// make sockets, exec or create processes.
func Install() error {
	f, err := Build(Profile())
	if err != nil {
		return err
	}
	defer f.Release()
	if err := f.Load(); err != nil {
		return fmt.Errorf("seccomp: load: %w", err)
	}
	return nil
}
