//go:build rexevil

#include "textflag.h"

// func int80(nr uintptr) int
// An i386 system call from a 64-bit process (SECURITY-TESTS H06): the
// seccomp filter sees AUDIT_ARCH_I386 and must kill before the kernel runs
// it. Arguments are zero, so an allowed call would fail harmlessly.
TEXT ·int80(SB),NOSPLIT,$0-16
	MOVQ nr+0(FP), AX
	XORQ BX, BX
	XORQ CX, CX
	XORQ DX, DX
	INT $0x80
	MOVQ AX, ret+8(FP)
	RET
