//go:build rexthin

#include "textflag.h"

// func rexExecEntry()
//
// The client build's ELF entry point (the Makefile links the rexthin build
// with -E main.rexExecEntry; see entry_thin_amd64.go). Before the Go
// runtime starts, it looks for a standalone invocation: an argument that
// is --policy or -policy, alone or with =VALUE. Finding one, it
// re-executes into the engine build with the same argv and environment,
// as handOff would after the runtime had started (the runtime's start and
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
	MOVQ	$1, R14			// the argument looked at
scan:
	CMPQ	R14, R12
	JGE	runtime
	MOVQ	(R13)(R14*8), SI
	INCQ	R14
	MOVQ	(SI), AX
	MOVQ	·dashDashPolicy(SB), CX
	CMPQ	AX, CX
	JNE	single
	MOVBQZX	8(SI), AX
	JMP	end
single:
	MOVQ	$0x00ffffffffffffff, CX
	ANDQ	CX, AX
	MOVQ	·dashPolicy(SB), CX
	CMPQ	AX, CX
	JNE	scan
	MOVBQZX	7(SI), AX
end:
	CMPQ	AX, $0
	JEQ	found
	CMPQ	AX, $61			// "="
	JEQ	found
	JMP	scan

found:
	MOVQ	$89, AX			// readlink("/proc/self/exe", exeBuf, 3840)
	LEAQ	·procSelfExe(SB), DI
	LEAQ	·exeBuf(SB), SI
	MOVQ	$3840, DX
	SYSCALL
	CMPQ	AX, $0
	JLE	runtime
	CMPQ	AX, $3840
	JGE	runtime			// possibly truncated
	LEAQ	·exeBuf(SB), R15
	ADDQ	AX, R15			// one past the path's last byte
slash:
	DECQ	R15
	LEAQ	·exeBuf(SB), CX
	CMPQ	R15, CX
	JLT	runtime			// no "/": not a path to execute from
	MOVBQZX	(R15), AX
	CMPQ	AX, $47			// "/"
	JNE	slash
	INCQ	R15			// where the file name goes

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
// and environment (after argv's NULL, argc in R12). It returns only if
// execve failed. It clobbers AX, CX, DX, SI, DI, R10, R11.
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
	LEAQ	8(R13)(R12*8), DX	// envp
	MOVQ	$59, AX			// execve
	SYSCALL
	RET

DATA	·dashDashPolicy+0(SB)/8, $"--policy"
GLOBL	·dashDashPolicy(SB), RODATA|NOPTR, $8

DATA	·dashPolicy+0(SB)/4, $"-pol"
DATA	·dashPolicy+4(SB)/2, $"ic"
DATA	·dashPolicy+6(SB)/1, $"y"
GLOBL	·dashPolicy(SB), RODATA|NOPTR, $8

DATA	·procSelfExe+0(SB)/8, $"/proc/se"
DATA	·procSelfExe+8(SB)/4, $"lf/e"
DATA	·procSelfExe+12(SB)/2, $"xe"
GLOBL	·procSelfExe(SB), RODATA|NOPTR, $16

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

GLOBL	·exeBuf(SB), NOPTR, $4096
