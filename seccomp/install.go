package seccomp

import (
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The worker installs the profile as libseccomp compiled it ahead of time
// (program_<arch>.bpf, embedded; TestCompiledProgram checks it is the
// compilation of profile.go and says how to regenerate it). Loading a ready
// program needs no cgo, so the worker is a pure Go binary, which is what
// lets it apply its per-thread restrictions to every thread at once
// instead of re-executing itself (see package worker).

// placeholderPID stands for SelfPID in the compiled program: above any pid
// the kernel hands out (pid_max is at most 2²²), so it matches nothing
// until Install writes the worker's pid in its place.
const placeholderPID = 0x5e1f_0001

// sockFilter is struct sock_filter, one BPF instruction.
type sockFilter struct {
	Code   uint16
	Jt, Jf uint8
	K      uint32
}

// jeqK is BPF_JMP|BPF_JEQ|BPF_K: the comparison libseccomp emits for an
// argument equal to a constant.
const jeqK = 0x15

// program is the compiled profile for a worker whose pid is pid.
func program(pid int) ([]sockFilter, error) {
	if len(compiled) == 0 || len(compiled)%8 != 0 {
		return nil, fmt.Errorf("seccomp: no compiled filter for %s (add program_%s.go and generate it: see TestCompiledProgram)", runtime.GOARCH, runtime.GOARCH)
	}
	if pid <= 0 || pid >= placeholderPID {
		return nil, fmt.Errorf("seccomp: pid %d out of range", pid)
	}
	prog := make([]sockFilter, len(compiled)/8)
	for i := range prog {
		b := compiled[i*8:]
		prog[i] = sockFilter{Code: binary.NativeEndian.Uint16(b), Jt: b[2], Jf: b[3], K: binary.NativeEndian.Uint32(b[4:])}
		if prog[i].Code == jeqK && prog[i].K == placeholderPID {
			prog[i].K = uint32(pid)
		}
	}
	return prog, nil
}

// Install loads the worker profile on every thread of the calling process
// (TSYNC), with no_new_privs set. After it returns, the process can no
// longer open files, make sockets, exec or create processes.
func Install() error {
	prog, err := program(os.Getpid())
	if err != nil {
		return err
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("seccomp: no_new_privs: %w", err)
	}
	fprog := struct {
		len    uint16
		filter *sockFilter
	}{uint16(len(prog)), &prog[0]}
	// With TSYNC the kernel puts the filter on every thread or on none,
	// and returns the id of a thread it could not synchronise.
	r, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC,
		uintptr(unsafe.Pointer(&fprog)))
	runtime.KeepAlive(prog)
	switch {
	case e != 0:
		return fmt.Errorf("seccomp: load: %w", e)
	case r != 0:
		return fmt.Errorf("seccomp: load: thread %d could not take the filter", r)
	}
	return nil
}
