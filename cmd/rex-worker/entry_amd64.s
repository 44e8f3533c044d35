#include "textflag.h"

// func rexEntry()
//
// The worker's ELF entry point (the build links it with -E main.rexEntry;
// see entry.go). It runs before the Go runtime, while the process has one
// thread, and makes the per-thread settings that never need to change
// back, so that every thread the runtime starts inherits them:
//   prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
//   prctl(PR_CAPBSET_DROP, c) for every capability c the kernel knows
//   prctl(PR_SET_SECUREBITS, securebits)   (worker.SecureBits)
//   prctl(PR_SET_NO_NEW_PRIVS, 1)
// None of them takes a capability from the effective set: the worker keeps
// what it needs to build its empty root until it empties every set itself.
// Only when all succeed does it set entryLockdown; on any error it leaves
// it zero and the worker makes every call itself, on every thread.
// It touches neither the stack nor the registers the runtime's entry
// reads (SP: argc, argv, envp), and clobbers only syscall registers.
TEXT ·rexEntry(SB),NOSPLIT|NOFRAME,$0
	MOVQ	$157, AX	// SYS_prctl
	MOVQ	$47, DI		// PR_CAP_AMBIENT
	MOVQ	$4, SI		// PR_CAP_AMBIENT_CLEAR_ALL
	XORQ	DX, DX
	XORQ	R10, R10
	XORQ	R8, R8
	SYSCALL
	CMPQ	AX, $0
	JNE	runtime

	XORQ	R12, R12	// capability number
bounding:
	MOVQ	$157, AX
	MOVQ	$24, DI		// PR_CAPBSET_DROP
	MOVQ	R12, SI
	XORQ	DX, DX
	XORQ	R10, R10
	XORQ	R8, R8
	SYSCALL
	CMPQ	AX, $-22	// EINVAL: past the kernel's last capability
	JEQ	securebits
	CMPQ	AX, $0
	JNE	runtime
	INCQ	R12
	CMPQ	R12, $64
	JLT	bounding
	JMP	runtime		// a kernel with 64 capabilities is not one this was written for

securebits:
	CMPQ	R12, $0
	JEQ	runtime		// no capability at all: not a kernel this was written for
	MOVQ	$157, AX
	MOVQ	$28, DI		// PR_SET_SECUREBITS
	MOVQ	$0xef, SI	// worker.SecureBits
	XORQ	DX, DX
	XORQ	R10, R10
	XORQ	R8, R8
	SYSCALL
	CMPQ	AX, $0
	JNE	runtime

	MOVQ	$157, AX
	MOVQ	$38, DI		// PR_SET_NO_NEW_PRIVS
	MOVQ	$1, SI
	XORQ	DX, DX
	XORQ	R10, R10
	XORQ	R8, R8
	SYSCALL
	CMPQ	AX, $0
	JNE	runtime

	MOVL	$1, ·entryLockdown(SB)
runtime:
	JMP	_rt0_amd64_linux(SB)
