//go:build !purego

#include "textflag.h"

// func prefetchLines(p unsafe.Pointer, lines int)
TEXT ·prefetchLines(SB), NOSPLIT, $0-16
	MOVQ p+0(FP), AX
	MOVQ lines+8(FP), CX
	TESTQ CX, CX
	JLE done
loop:
	PREFETCHT0 (AX)
	ADDQ $64, AX
	DECQ CX
	JNZ loop
done:
	RET

// func prefetchSlot(k, sec unsafe.Pointer)
TEXT ·prefetchSlot(SB), NOSPLIT, $0-16
	MOVQ k+0(FP), AX
	MOVQ sec+8(FP), CX
	PREFETCHT0 (AX)
	PREFETCHT0 (CX)
	RET
