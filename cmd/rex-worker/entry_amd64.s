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

// WRITEMAP(step, id, path) is one id map's step of rexEntry: it writes
// "0 <id> 1" to the map file at path, and on failure jumps to usernsFailed
// with the step in R12 and minus the errno in AX.
#define WRITEMAP(step, id, path) \
	MOVQ	step, R12; \
	MOVQ	id, AX; \
	CALL	·mapLine(SB); \
	LEAQ	path, DI; \
	CALL	·writeProc(SB); \
	CMPQ	AX, $0; \
	JNE	usernsFailed

// func rexEntry()
//
// The worker's ELF entry point (the build links it with -E main.rexEntry;
// see entry_amd64.go). It runs before the Go runtime, while the process
// has one thread.
//
// First, when the broker asks for it (argv is exactly "rex-worker",
// "--userns"), it makes the worker's user namespace itself: the broker then
// starts the worker as its unprivileged host uid in new pid, net, ipc and
// cgroup namespaces only, which it can do without copying its own address
// space (see broker.startWorker). Only a single-threaded process may
// unshare a user namespace, so this cannot wait for Go:
//   getuid(), getgid()            (the host ids, read before they are unmapped)
//   unshare(CLONE_NEWUSER|CLONE_NEWNS|CLONE_NEWUTS)
//   "deny" > /proc/self/setgroups
//   "0 <uid> 1" > /proc/self/uid_map, "0 <gid> 1" > /proc/self/gid_map
// The kernel lets an unprivileged process map exactly its own ids, and
// nothing else. The outcome is left in entryUserns (1 made, 2 failed, with
// the step and errno); the worker refuses to go on without it.
//
// Then it makes the per-thread settings that never need to change back,
// so that every thread the runtime starts inherits them:
//   prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
//   prctl(PR_CAPBSET_DROP, c) for every capability c the kernel knows
//   prctl(PR_SET_SECUREBITS, securebits)   (worker.SecureBits)
//   prctl(PR_SET_NO_NEW_PRIVS, 1)
// None of them takes a capability from the effective set: the worker keeps
// what it needs to build its empty root until it empties every set itself.
// Only when all succeed does it set entryLockdown; on any error it leaves
// it zero and the worker makes every call itself, on every thread.
//
// It leaves SP as it found it (the runtime's entry reads argc, argv and
// envp there); its two subroutines' calls use the stack below argc for
// their return addresses only. The runtime's entry reads no register.
TEXT ·rexEntry(SB),NOSPLIT|NOFRAME,$0
	MOVQ	0(SP), AX		// argc
	CMPQ	AX, $2
	JNE	lockdown
	MOVQ	16(SP), SI		// argv[1]
	MOVQ	(SI), AX
	MOVQ	·usernsArg(SB), CX
	CMPQ	AX, CX
	JNE	lockdown
	MOVBQZX	8(SI), AX
	CMPQ	AX, $0
	JNE	lockdown

	MOVQ	$102, AX		// getuid
	SYSCALL
	MOVQ	AX, BX
	MOVQ	$104, AX		// getgid
	SYSCALL
	MOVQ	AX, R9

	MOVQ	$1, R12			// step 1
	MOVQ	$272, AX		// unshare
	MOVQ	$0x14020000, DI		// CLONE_NEWUSER|CLONE_NEWNS|CLONE_NEWUTS
	SYSCALL
	CMPQ	AX, $0
	JNE	usernsFailed

	MOVQ	$2, R12			// step 2
	LEAQ	·setgroupsPath(SB), DI
	LEAQ	·denyText(SB), SI
	MOVQ	$4, DX
	CALL	·writeProc(SB)
	CMPQ	AX, $0
	JNE	usernsFailed

	WRITEMAP($3, BX, ·uidMapPath(SB))	// step 3: "0 <uid> 1" > uid_map
	WRITEMAP($4, R9, ·gidMapPath(SB))	// step 4: "0 <gid> 1" > gid_map
	MOVL	$1, ·entryUserns(SB)
	JMP	lockdown

usernsFailed:
	NEGQ	AX
	MOVL	AX, ·entryUsernsErrno(SB)
	MOVL	R12, ·entryUsernsStep(SB)
	MOVL	$2, ·entryUserns(SB)
	JMP	runtime			// the worker reports it and stops

lockdown:
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

// func mapLine()
//
// mapLine writes the id map line "0 <AX> 1\n" into entryMapBuf and leaves
// its start in SI and its length in DX. It clobbers AX, CX, DX, SI, R8.
TEXT ·mapLine(SB),NOSPLIT|NOFRAME,$0
	LEAQ	·entryMapBuf+32(SB), R8
	MOVB	$10, -1(R8)		// "\n"
	MOVB	$49, -2(R8)		// "1"
	MOVB	$32, -3(R8)		// " "
	LEAQ	-3(R8), SI
	MOVQ	$10, CX
digits:
	XORQ	DX, DX
	DIVQ	CX
	ADDQ	$48, DX
	DECQ	SI
	MOVB	DX, (SI)
	TESTQ	AX, AX
	JNE	digits
	DECQ	SI
	MOVB	$32, (SI)		// " "
	DECQ	SI
	MOVB	$48, (SI)		// "0"
	MOVQ	R8, DX
	SUBQ	SI, DX
	RET

// func writeProc()
//
// writeProc writes DX bytes from SI to the file named by the NUL-ended
// path at DI, opened write-only, in one write, then closes it. AX is 0, or
// minus an errno (EIO for a short write). It clobbers AX, CX, DX, SI, DI,
// R10, R11, R13, R14, R15.
TEXT ·writeProc(SB),NOSPLIT|NOFRAME,$0
	MOVQ	SI, R14			// the bytes
	MOVQ	DX, R15			// their length
	MOVQ	DI, SI
	MOVQ	$-100, DI		// AT_FDCWD
	MOVQ	$0x80001, DX		// O_WRONLY|O_CLOEXEC
	XORQ	R10, R10
	MOVQ	$257, AX		// openat
	SYSCALL
	CMPQ	AX, $0
	JLT	done
	MOVQ	AX, R13
	MOVQ	AX, DI
	MOVQ	R14, SI
	MOVQ	R15, DX
	MOVQ	$1, AX			// write
	SYSCALL
	MOVQ	AX, R14
	MOVQ	R13, DI
	MOVQ	$3, AX			// close
	SYSCALL
	MOVQ	R14, AX
	CMPQ	AX, $0
	JLT	done
	CMPQ	AX, R15
	MOVQ	$0, AX			// leaves the flags alone
	JEQ	done
	MOVQ	$-5, AX			// EIO
done:
	RET

DATA	·usernsArg+0(SB)/8, $"--userns"
GLOBL	·usernsArg(SB), RODATA|NOPTR, $8

DATA	·denyText+0(SB)/4, $"deny"
GLOBL	·denyText(SB), RODATA|NOPTR, $4

DATA	·setgroupsPath+0(SB)/8, $"/proc/se"
DATA	·setgroupsPath+8(SB)/8, $"lf/setgr"
DATA	·setgroupsPath+16(SB)/4, $"oups"
GLOBL	·setgroupsPath(SB), RODATA|NOPTR, $24

DATA	·uidMapPath+0(SB)/8, $"/proc/se"
DATA	·uidMapPath+8(SB)/8, $"lf/uid_m"
DATA	·uidMapPath+16(SB)/2, $"ap"
GLOBL	·uidMapPath(SB), RODATA|NOPTR, $24

DATA	·gidMapPath+0(SB)/8, $"/proc/se"
DATA	·gidMapPath+8(SB)/8, $"lf/gid_m"
DATA	·gidMapPath+16(SB)/2, $"ap"
GLOBL	·gidMapPath(SB), RODATA|NOPTR, $24

GLOBL	·entryMapBuf(SB), NOPTR, $32
