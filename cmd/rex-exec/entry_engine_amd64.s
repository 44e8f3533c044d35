//go:build !rexthin

#include "textflag.h"

// SYSCALL3(n, a, b, c) makes system call n with three arguments; the
// result is in AX.
#define SYSCALL3(n, a, b, c) \
	MOVQ	n, AX; \
	MOVQ	a, DI; \
	MOVQ	b, SI; \
	MOVQ	c, DX; \
	SYSCALL

// DUPTO(off, fd) is the child's dup3(spawnFDs[off/4], fd, 0); it dies on
// failure.
#define DUPTO(off, fd) \
	MOVLQSX	off(R14), DI; \
	SYSCALL3($292, DI, fd, $0); \
	CMPQ	AX, $0; \
	JLT	die

// CLOSEAT(off) is close(spawnFDs[off/4]).
#define CLOSEAT(off) \
	MOVLQSX	off(R14), DI; \
	MOVQ	$3, AX; \
	SYSCALL

// func rexEngineEntry()
//
// The engine build's ELF entry point (the Makefile links
// rex-exec-standalone with -E main.rexEngineEntry; see
// entry_engine_amd64.go). A root standalone run (an argument --policy or
// -policy, alone or =VALUE; effective uid 0; no $REX_WORKER; rex-worker
// next to this executable) spends about
// half its start-up starting two Go programs one after the other, the
// engine and then its worker. This starts the worker first, before the
// engine's Go runtime, so that the two start side by side:
//
//   socketpair(AF_UNIX, SOCK_SEQPACKET|SOCK_CLOEXEC)  the worker's socket
//   pipe2(O_CLOEXEC) three times                      its stdin, stdout, stderr
//   clone(CLONE_NEWPID|SIGCHLD)                       a copy of this process,
//                                                     pid 1 of a new pid namespace
// and in the child, once the parent has let it go (see otherCPUs below),
// as broker.startWorker's own child does:
//   unshare(CLONE_NEWNET|CLONE_NEWIPC|CLONE_NEWCGROUP)
//   setsid(); setgroups(0); setgid(uid); setuid(uid)  uid: prespawnUID
//   chdir("/"); prctl(PR_SET_PDEATHSIG, SIGKILL); an empty signal mask
//   its ends of the pipes and socket as 0, 1, 2 and 3; close_range(4, ~0)
//   execve(rex-worker next to this executable, ["rex-worker", "--userns"],
//          ["REX_WORKER=1", "GOMAXPROCS=1"])
// The worker's own entry point then makes its user namespace, exactly as
// when the engine starts it.
//
// The parent leaves the child's pid and its own ends in prespawn and goes
// on into the Go runtime. The engine trusts nothing made here: before a
// run gets the worker, the Runner checks from outside what this should
// have made (broker.Adopted), and a worker that fails the check, or exits,
// is killed and replaced by one the Runner starts itself. Any failure here (a descriptor
// that would land on 0-3, a system call refused) leaves prespawn zero.
// Every descriptor made here is close-on-exec in the engine.
//
// It leaves SP as it found it (the runtime's entry reads argc, argv and
// envp there); its subroutine calls use the stack below argc for their
// return addresses only. The runtime's entry reads no register.
TEXT ·rexEngineEntry(SB),NOSPLIT|NOFRAME,$0
	MOVQ	0(SP), R12		// argc
	LEAQ	8(SP), R13		// argv
	CALL	·policyArg(SB)
	CMPQ	AX, $0
	JEQ	runtime
	MOVQ	$107, AX		// geteuid
	SYSCALL
	CMPQ	AX, $0
	JNE	runtime
	CALL	·workerEnv(SB)
	CMPQ	AX, $0
	JNE	runtime
	CALL	·exeDir(SB)
	CMPQ	R15, $0
	JEQ	runtime
	LEAQ	·workerName(SB), SI	// the worker's path: exeBuf's directory + "rex-worker"
	MOVQ	R15, DI
name:
	MOVB	(SI), AX
	MOVB	AX, (DI)
	INCQ	SI
	INCQ	DI
	TESTB	AL, AL
	JNE	name
	// No worker there (installed elsewhere, found by broker.WorkerPath's
	// later candidates): leave it to the engine.
	SYSCALL3($269, $-100, $·exeBuf(SB), $1)	// faccessat(AT_FDCWD, worker, X_OK)
	CMPQ	AX, $0
	JNE	runtime

	// spawnFDs: socket[2], stdin[2], stdout[2], stderr[2] (int32 each).
	LEAQ	·spawnFDs(SB), R14
	MOVQ	$-1, AX
	MOVQ	AX, 0(R14)
	MOVQ	AX, 8(R14)
	MOVQ	AX, 16(R14)
	MOVQ	AX, 24(R14)
	MOVQ	$53, AX			// socketpair(AF_UNIX, SOCK_SEQPACKET|SOCK_CLOEXEC, 0, spawnFDs)
	MOVQ	$1, DI
	MOVQ	$0x80005, SI
	XORQ	DX, DX
	MOVQ	R14, R10
	SYSCALL
	CMPQ	AX, $0
	JNE	fail
	LEAQ	8(R14), DI		// pipe2(stdin, O_CLOEXEC)
	MOVQ	$0x80000, SI
	MOVQ	$293, AX
	SYSCALL
	CMPQ	AX, $0
	JNE	fail
	LEAQ	16(R14), DI		// pipe2(stdout, O_CLOEXEC)
	MOVQ	$0x80000, SI
	MOVQ	$293, AX
	SYSCALL
	CMPQ	AX, $0
	JNE	fail
	LEAQ	24(R14), DI		// pipe2(stderr, O_CLOEXEC)
	MOVQ	$0x80000, SI
	MOVQ	$293, AX
	SYSCALL
	CMPQ	AX, $0
	JNE	fail
	// None may be 0-2 (the engine's stdio was closed: its ends would pose
	// as stdin, stdout or stderr), and the child moves its ends to 0-3, so
	// none of those may be there already.
	XORQ	CX, CX
low:
	MOVLQSX	(R14)(CX*4), AX
	CMPQ	AX, $3
	JLT	fail
	INCQ	CX
	CMPQ	CX, $8
	JLT	low
	MOVLQSX	4(R14), AX
	CMPQ	AX, $4
	JLT	fail
	MOVLQSX	8(R14), AX
	CMPQ	AX, $4
	JLT	fail
	MOVLQSX	20(R14), AX
	CMPQ	AX, $4
	JLT	fail
	MOVLQSX	28(R14), AX
	CMPQ	AX, $4
	JLT	fail

	// The kernel queues a new child on its parent's CPU, and here it
	// waited there for the parent's first block (~1.4 ms) while another
	// CPU idled. So the child starts allowed everywhere but on this CPU
	// (otherMask) and waits for the parent to say so on its stdin pipe;
	// woken, it runs elsewhere and first gives itself back cpuMask, the
	// mask it would have had. With one CPU, or a mask the calls refuse,
	// the child keeps cpuMask throughout.
	MOVQ	$204, AX		// sched_getaffinity(0, 128, cpuMask)
	XORQ	DI, DI
	MOVQ	$128, SI
	LEAQ	·cpuMask(SB), DX
	SYSCALL
	MOVQ	AX, ·maskLen(SB)	// bytes written, or -errno
	CALL	·otherCPUs(SB)

	MOVQ	$56, AX			// clone(CLONE_NEWPID|SIGCHLD, 0, 0, 0, 0): fork
	MOVQ	$0x20000011, DI
	XORQ	SI, SI
	XORQ	DX, DX
	XORQ	R10, R10
	XORQ	R8, R8
	SYSCALL
	CMPQ	AX, $0
	JEQ	child
	JLT	fail

	// The parent: publish the child and the engine's ends, close the child's.
	MOVQ	AX, ·prespawn+0(SB)	// pid
	CMPQ	·haveOther(SB), $0
	JEQ	release
	MOVQ	AX, DI			// sched_setaffinity(pid, maskLen, otherMask)
	MOVQ	·maskLen(SB), SI
	LEAQ	·otherMask(SB), DX
	MOVQ	$203, AX
	SYSCALL
release:
	MOVLQSX	12(R14), DI		// write(stdin[1], "\n", 1): the child may go
	LEAQ	·newline(SB), SI
	MOVQ	$1, DX
	MOVQ	$1, AX
	SYSCALL
	MOVLQSX	0(R14), AX
	MOVQ	AX, ·prespawn+8(SB)	// socket
	MOVLQSX	12(R14), AX
	MOVQ	AX, ·prespawn+16(SB)	// stdin's write end
	MOVLQSX	16(R14), AX
	MOVQ	AX, ·prespawn+24(SB)	// stdout's read end
	MOVLQSX	24(R14), AX
	MOVQ	AX, ·prespawn+32(SB)	// stderr's read end
	CLOSEAT(4)			// socket[1]
	CLOSEAT(8)			// stdin[0]
	CLOSEAT(20)			// stdout[1]
	CLOSEAT(28)			// stderr[1]
	JMP	runtime

fail:
	XORQ	CX, CX			// close whatever was made
close:
	MOVLQSX	(R14)(CX*4), DI
	CMPQ	DI, $0
	JLT	next
	MOVQ	CX, R15
	MOVQ	$3, AX
	SYSCALL
	MOVQ	R15, CX
next:
	INCQ	CX
	CMPQ	CX, $8
	JLT	close
runtime:
	JMP	_rt0_amd64_linux(SB)

child:
	CLOSEAT(12)			// stdin[1]: so that the read below ends if the parent dies
	MOVLQSX	8(R14), DI		// read(stdin[0], scratch, 1): wait for the parent
	LEAQ	·scratch(SB), SI
	MOVQ	$1, DX
	XORQ	AX, AX
	SYSCALL
	CMPQ	AX, $1
	JNE	die
	CMPQ	·haveOther(SB), $0
	JEQ	placed
	XORQ	DI, DI			// sched_setaffinity(0, maskLen, cpuMask)
	MOVQ	·maskLen(SB), SI
	LEAQ	·cpuMask(SB), DX
	MOVQ	$203, AX
	SYSCALL
	CMPQ	AX, $0
	JNE	die
placed:
	SYSCALL3($272, $0x4a000000, $0, $0)	// unshare(CLONE_NEWNET|CLONE_NEWIPC|CLONE_NEWCGROUP)
	CMPQ	AX, $0
	JNE	die
	MOVQ	$112, AX		// setsid
	SYSCALL
	CMPQ	AX, $0
	JLT	die
	SYSCALL3($116, $0, $0, $0)	// setgroups(0, NULL)
	CMPQ	AX, $0
	JNE	die
	MOVQ	·prespawnUID(SB), R15
	SYSCALL3($106, R15, $0, $0)	// setgid(uid)
	CMPQ	AX, $0
	JNE	die
	SYSCALL3($105, R15, $0, $0)	// setuid(uid)
	CMPQ	AX, $0
	JNE	die
	LEAQ	·rootDir(SB), DI	// chdir("/")
	MOVQ	$80, AX
	SYSCALL
	CMPQ	AX, $0
	JNE	die
	SYSCALL3($157, $1, $9, $0)	// prctl(PR_SET_PDEATHSIG, SIGKILL)
	CMPQ	AX, $0
	JNE	die
	MOVQ	$14, AX			// rt_sigprocmask(SIG_SETMASK, &emptySet, NULL, 8)
	MOVQ	$2, DI
	LEAQ	·emptySet(SB), SI
	XORQ	DX, DX
	MOVQ	$8, R10
	SYSCALL
	CMPQ	AX, $0
	JNE	die
	DUPTO(8, $0)			// stdin[0]
	DUPTO(20, $1)			// stdout[1]
	DUPTO(28, $2)			// stderr[1]
	DUPTO(4, $3)			// socket[1]
	MOVQ	$436, AX		// close_range(4, ~0, 0): nothing else reaches the worker
	MOVQ	$4, DI
	MOVQ	$0xffffffff, SI
	XORQ	DX, DX
	SYSCALL
	CMPQ	AX, $0
	JNE	die
	LEAQ	·exeBuf(SB), DI		// execve(worker, workerArgv, workerEnvp)
	LEAQ	·workerArgv(SB), SI
	LEAQ	·workerEnvp(SB), DX
	MOVQ	$59, AX
	SYSCALL
die:
	MOVQ	$231, AX		// exit_group(127)
	MOVQ	$127, DI
	SYSCALL
	JMP	die

// func otherCPUs()
//
// otherCPUs copies cpuMask (maskLen bytes; a negative maskLen is an
// error) to otherMask without the CPU this runs on, and sets haveOther
// when that leaves a CPU. It clobbers AX, CX, DX, SI, DI, R8-R11.
TEXT ·otherCPUs(SB),NOSPLIT|NOFRAME,$0
	MOVQ	$0, ·haveOther(SB)
	MOVQ	·maskLen(SB), R8
	CMPQ	R8, $0
	JLE	done
	MOVQ	$309, AX		// getcpu(&curCPU, NULL, NULL)
	LEAQ	·curCPU(SB), DI
	XORQ	SI, SI
	XORQ	DX, DX
	SYSCALL
	CMPQ	AX, $0
	JNE	done
	LEAQ	·cpuMask(SB), R9
	LEAQ	·otherMask(SB), R10
	XORQ	CX, CX
copy:
	MOVB	(R9)(CX*1), AX
	MOVB	AX, (R10)(CX*1)
	INCQ	CX
	CMPQ	CX, R8
	JLT	copy
	MOVLQZX	·curCPU(SB), AX
	MOVQ	AX, SI
	SHRQ	$3, SI			// its byte
	CMPQ	SI, R8
	JGE	done
	MOVQ	AX, CX
	ANDQ	$7, CX			// its bit
	MOVQ	$1, DX
	SHLQ	CX, DX
	NOTQ	DX
	MOVBQZX	(R10)(SI*1), AX
	ANDQ	DX, AX
	MOVB	AX, (R10)(SI*1)
	XORQ	CX, CX			// any CPU left?
	XORQ	DX, DX
left:
	MOVBQZX	(R10)(CX*1), AX
	ORQ	AX, DX
	INCQ	CX
	CMPQ	CX, R8
	JLT	left
	CMPQ	DX, $0
	JEQ	done
	MOVQ	$1, ·haveOther(SB)
done:
	RET

// func workerEnv()
//
// workerEnv reports in AX whether the environment (after argv's NULL, argc
// in R12) sets REX_WORKER, which names another worker binary (see
// broker.WorkerPath): 1 if it does, else 0. It clobbers AX, CX, SI, DI.
TEXT ·workerEnv(SB),NOSPLIT|NOFRAME,$0
	LEAQ	8(R13)(R12*8), DI	// envp
env:
	MOVQ	(DI), SI
	CMPQ	SI, $0
	JEQ	unset
	ADDQ	$8, DI
	MOVQ	(SI), AX
	MOVQ	·rexWorkerVar(SB), CX
	CMPQ	AX, CX
	JNE	env
	MOVLQZX	8(SI), AX		// "ER=" and one more byte
	ANDL	$0x00ffffff, AX
	CMPL	AX, $0x3d5245		// "ER="
	JNE	env
	MOVQ	$1, AX
	RET
unset:
	XORQ	AX, AX
	RET

DATA	·rexWorkerVar+0(SB)/8, $"REX_WORK"
GLOBL	·rexWorkerVar(SB), RODATA|NOPTR, $8

DATA	·workerName+0(SB)/8, $"rex-work"
DATA	·workerName+8(SB)/2, $"er"
GLOBL	·workerName(SB), RODATA|NOPTR, $16

DATA	·userns+0(SB)/8, $"--userns"
GLOBL	·userns(SB), RODATA|NOPTR, $16

DATA	·envWorker+0(SB)/8, $"REX_WORK"
DATA	·envWorker+8(SB)/4, $"ER=1"
GLOBL	·envWorker(SB), RODATA|NOPTR, $16

DATA	·envProcs+0(SB)/8, $"GOMAXPRO"
DATA	·envProcs+8(SB)/4, $"CS=1"
GLOBL	·envProcs(SB), RODATA|NOPTR, $16

DATA	·workerArgv+0(SB)/8, $·workerName(SB)
DATA	·workerArgv+8(SB)/8, $·userns(SB)
GLOBL	·workerArgv(SB), RODATA, $24

DATA	·workerEnvp+0(SB)/8, $·envWorker(SB)
DATA	·workerEnvp+8(SB)/8, $·envProcs(SB)
GLOBL	·workerEnvp(SB), RODATA, $24

DATA	·rootDir+0(SB)/1, $"/"
GLOBL	·rootDir(SB), RODATA|NOPTR, $8

GLOBL	·emptySet(SB), RODATA|NOPTR, $8

GLOBL	·spawnFDs(SB), NOPTR, $32

DATA	·newline+0(SB)/1, $"\n"
GLOBL	·newline(SB), RODATA|NOPTR, $8

GLOBL	·cpuMask(SB), NOPTR, $128
GLOBL	·otherMask(SB), NOPTR, $128
GLOBL	·maskLen(SB), NOPTR, $8
GLOBL	·haveOther(SB), NOPTR, $8
GLOBL	·curCPU(SB), NOPTR, $8
GLOBL	·scratch(SB), NOPTR, $8
