#include "textflag.h"

// What both entry points need: the client's (entry_thin_amd64.s) and the
// engine's (entry_engine_amd64.s).

// func policyArg()
//
// policyArg reports in AX whether an argument of argv (R13, argc in R12)
// is --policy or -policy, alone or with =VALUE: 1 if one is, else 0. It
// reads eight bytes at each argument's start, which stay inside the
// strings the kernel copied above argv (the executable's name and eight
// zero bytes end them). It clobbers AX, CX, SI, R14.
TEXT ·policyArg(SB),NOSPLIT|NOFRAME,$0
	MOVQ	$1, R14			// the argument looked at
scan:
	CMPQ	R14, R12
	JGE	none
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
	MOVQ	$1, AX
	RET
none:
	XORQ	AX, AX
	RET

// func exeDir()
//
// exeDir reads /proc/self/exe into exeBuf and leaves in R15 where a file
// name goes in its directory (one past the last "/"), or 0 when the link
// cannot be read whole or holds no "/". It clobbers AX, CX, DX, SI, DI,
// R11.
TEXT ·exeDir(SB),NOSPLIT|NOFRAME,$0
	MOVQ	$89, AX			// readlink("/proc/self/exe", exeBuf, 3840)
	LEAQ	·procSelfExe(SB), DI
	LEAQ	·exeBuf(SB), SI
	MOVQ	$3840, DX
	SYSCALL
	XORQ	R15, R15
	CMPQ	AX, $0
	JLE	done
	CMPQ	AX, $3840
	JGE	done			// possibly truncated
	LEAQ	·exeBuf(SB), R15
	ADDQ	AX, R15			// one past the path's last byte
slash:
	DECQ	R15
	LEAQ	·exeBuf(SB), CX
	CMPQ	R15, CX
	JLT	nodir			// no "/": not a path to execute from
	MOVBQZX	(R15), AX
	CMPQ	AX, $47			// "/"
	JNE	slash
	INCQ	R15
	RET
nodir:
	XORQ	R15, R15
done:
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

GLOBL	·exeBuf(SB), NOPTR, $4096
