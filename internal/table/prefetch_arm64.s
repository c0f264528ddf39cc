//go:build !purego

#include "textflag.h"

// func prefetchLines(p unsafe.Pointer, lines int)
TEXT ·prefetchLines(SB), NOSPLIT, $0-16
	MOVD p+0(FP), R0
	MOVD lines+8(FP), R1
	CMP $0, R1
	BLE done
loop:
	PRFM (R0), PLDL1KEEP
	ADD $64, R0
	SUBS $1, R1
	BNE loop
done:
	RET

// func prefetchSlot(k, sec unsafe.Pointer)
TEXT ·prefetchSlot(SB), NOSPLIT, $0-16
	MOVD k+0(FP), R0
	MOVD sec+8(FP), R1
	PRFM (R0), PLDL1KEEP
	PRFM (R1), PLDL1KEEP
	RET
