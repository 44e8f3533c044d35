#include "textflag.h"

// PRCTL(option, arg2) makes prctl(option, arg2, 0, 0, 0); the result is
// in AX.
#define PRCTL(option, arg2) \
	MOVQ	$157, AX; \
	MOVQ	option, DI; \
	MOVQ	arg2, SI; \
	XORQ	DX, DX; \
	XORQ	R10, R10; \
	XORQ	R8, R8; \
	SYSCALL

// func rexEntry()
//
// The worker's ELF entry point (the build links it with -E main.rexEntry;
// see entry_amd64.go). It runs before the Go runtime, while the process
// has one thread, and makes the per-thread settings that never need to change
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
// reads (SP: argc, argv, envp); it clobbers only the system call's
// registers and R12, R13, which the runtime's entry does not read.
TEXT ·rexEntry(SB),NOSPLIT|NOFRAME,$0
	PRCTL($47, $4)		// PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL
	CMPQ	AX, $0
	JNE	runtime

	XORQ	R12, R12	// capability number
bounding:
	PRCTL($24, R12)		// PR_CAPBSET_DROP
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
	MOVQ	$0xef, R13	// worker.SecureBits
	PRCTL($28, R13)		// PR_SET_SECUREBITS
	CMPQ	AX, $0
	JNE	runtime

	PRCTL($38, $1)		// PR_SET_NO_NEW_PRIVS
	CMPQ	AX, $0
	JNE	runtime

	MOVL	$1, ·entryLockdown(SB)
runtime:
	JMP	_rt0_amd64_linux(SB)
