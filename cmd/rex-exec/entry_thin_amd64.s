//go:build rexthin

#include "textflag.h"

// func rexExecEntry()
//
// The client build's ELF entry point (the Makefile links the rexthin build
// with -E main.rexExecEntry; see entry_thin_amd64.go). Before the Go
// runtime starts, it looks for a standalone invocation: an argument that
// is --policy or -policy, alone or with =VALUE. Finding one, it
// re-executes into the engine build with the same argv, and the same
// environment plus what engineEnvp adds, as handOff would after the
// runtime had started (the runtime's start and
// exit are ~1.5 ms of a standalone run here): from the executable's own
// directory, rex-exec-standalone, then ../libexec/rex/rex-exec-standalone,
// the first two places enginePath looks. If neither can be executed, or
// nothing names --policy, it goes on into the Go runtime, and main does
// everything as before, errors included.
//
// An argument that only looks like the flag (the value of --arg, a script
// path after the flags) sends a daemon run to the engine too, which runs
// it exactly as the client would, a little slower: the engine is the same
// program with the broker linked in.
//
// It leaves SP as it found it (the runtime's entry reads argc, argv and
// envp there); its subroutine calls use the stack below argc for their
// return addresses only. The runtime's entry reads no register.
TEXT ·rexExecEntry(SB),NOSPLIT|NOFRAME,$0
	MOVQ	0(SP), R12		// argc
	LEAQ	8(SP), R13		// argv
	CALL	·policyArg(SB)
	CMPQ	AX, $0
	JEQ	runtime
	CALL	·exeDir(SB)
	CMPQ	R15, $0
	JEQ	runtime
	CALL	·engineEnvp(SB)

	LEAQ	·engineName(SB), SI
	CALL	·execEngine(SB)
	LEAQ	·libexecEngineName(SB), SI
	CALL	·execEngine(SB)
runtime:
	JMP	_rt0_amd64_linux(SB)

// func execEngine()
//
// execEngine copies the NUL-ended name at SI to R15 in exeBuf, NUL
// included, and execve()s the result with the process's own argv (R13)
// and the environment at R9 (engineEnvp's). It returns only if execve
// failed. It clobbers AX, CX, DX, SI, DI, R10, R11.
TEXT ·execEngine(SB),NOSPLIT|NOFRAME,$0
	MOVQ	R15, DI
copy:
	MOVB	(SI), AX
	MOVB	AX, (DI)
	INCQ	SI
	INCQ	DI
	TESTB	AL, AL
	JNE	copy
	LEAQ	·exeBuf(SB), DI
	MOVQ	R13, SI
	MOVQ	R9, DX			// envp
	MOVQ	$59, AX			// execve
	SYSCALL
	RET

// func engineEnvp()
//
// engineEnvp leaves in R9 the environment the engine is to start with: the
// process's own (after argv's NULL, argc in R12), plus GOMAXPROCS=1 and
// REX_ENGINE_PROCS=1 when it sets no GOMAXPROCS. A standalone run's
// engine then starts its Go runtime on one processor, and keeps to it
// (see engineProcs in engine.go for why). The copy goes to engineEnvBuf; an
// environment with too many entries for it (more than maxEngineEnv, 1021)
// goes on unchanged, as engineEnv (engineenv.go) leaves it. It clobbers
// AX, CX, SI, DI, R8, R10, R11.
TEXT ·engineEnvp(SB),NOSPLIT|NOFRAME,$0
	LEAQ	8(R13)(R12*8), R8	// the process's envp
	MOVQ	R8, R9			// unless a copy is made
	LEAQ	·engineEnvBuf(SB), DI
	XORQ	CX, CX			// entries copied
next:
	MOVQ	(R8)(CX*8), SI
	TESTQ	SI, SI
	JEQ	add
	CMPQ	CX, $1021		// room for this one, the two added and NULL
	JGE	keep
	MOVQ	SI, (DI)(CX*8)
	INCQ	CX
	LEAQ	·gomaxprocsEq(SB), R10	// does it start with "GOMAXPROCS="?
cmp:
	MOVBQZX	(R10), AX
	TESTQ	AX, AX
	JEQ	keep			// it does: the caller chose; pass it on as it is
	MOVBQZX	(SI), R11		// a shorter string differs at its NUL
	CMPQ	AX, R11
	JNE	next
	INCQ	SI
	INCQ	R10
	JMP	cmp
add:
	LEAQ	·gomaxprocsOne(SB), AX
	MOVQ	AX, (DI)(CX*8)
	LEAQ	·engineProcsSet(SB), AX
	MOVQ	AX, 8(DI)(CX*8)
	MOVQ	$0, 16(DI)(CX*8)
	MOVQ	DI, R9
keep:
	RET



DATA	·engineName+0(SB)/8, $"rex-exec"
DATA	·engineName+8(SB)/8, $"-standal"
DATA	·engineName+16(SB)/2, $"on"
DATA	·engineName+18(SB)/1, $"e"
GLOBL	·engineName(SB), RODATA|NOPTR, $24

DATA	·libexecEngineName+0(SB)/8, $"../libex"
DATA	·libexecEngineName+8(SB)/8, $"ec/rex/r"
DATA	·libexecEngineName+16(SB)/8, $"ex-exec-"
DATA	·libexecEngineName+24(SB)/8, $"standalo"
DATA	·libexecEngineName+32(SB)/2, $"ne"
GLOBL	·libexecEngineName(SB), RODATA|NOPTR, $40

DATA	·gomaxprocsEq+0(SB)/8, $"GOMAXPRO"
DATA	·gomaxprocsEq+8(SB)/2, $"CS"
DATA	·gomaxprocsEq+10(SB)/1, $"="
DATA	·gomaxprocsEq+11(SB)/1, $0
GLOBL	·gomaxprocsEq(SB), RODATA|NOPTR, $12

DATA	·gomaxprocsOne+0(SB)/8, $"GOMAXPRO"
DATA	·gomaxprocsOne+8(SB)/4, $"CS=1"
DATA	·gomaxprocsOne+12(SB)/1, $0
GLOBL	·gomaxprocsOne(SB), RODATA|NOPTR, $13

DATA	·engineProcsSet+0(SB)/8, $"REX_ENGI"
DATA	·engineProcsSet+8(SB)/8, $"NE_PROCS"
DATA	·engineProcsSet+16(SB)/2, $"=1"
DATA	·engineProcsSet+18(SB)/1, $0
GLOBL	·engineProcsSet(SB), RODATA|NOPTR, $19

// engineEnvBuf: 1024 pointers.
GLOBL	·engineEnvBuf(SB), NOPTR, $8192
