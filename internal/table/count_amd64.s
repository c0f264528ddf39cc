//go:build !purego

#include "textflag.h"

// func countBlocks2(p *atomic.Uint32, n int, lim, t0, t1 uint32, acc *[8]uint32) int
//
// SSE2 (every amd64 has it), eight slots a turn. Every argument of 32 bits
// arrives with its top bit flipped, so that the signed compare PCMPGTL
// orders them as unsigned: x <u y ⇔ x^S <s y^S, S = 1<<31.
TEXT ·countBlocks2(SB), NOSPLIT, $0-48
	MOVQ p+0(FP), SI
	MOVQ n+8(FP), CX
	MOVL lim+16(FP), AX
	MOVL AX, X8
	PSHUFL $0, X8, X8 // lim^S in every lane
	MOVL t0+20(FP), AX
	MOVL AX, X9
	PSHUFL $0, X9, X9 // (t0-1)^S
	MOVL t1+24(FP), AX
	MOVL AX, X10
	PSHUFL $0, X10, X10 // (t1-1)^S
	MOVL $0x80000000, AX
	MOVL AX, X11
	PSHUFL $0, X11, X11 // S
	PCMPEQL X12, X12    // -1 in every lane
	PXOR X13, X13       // counts of x ≥ t0, a lane each
	PXOR X14, X14       // counts of x ≥ t1
	XORQ DX, DX         // slots done
	SUBQ $8, CX         // the last start of a whole turn
	JL done

loop:
	MOVOU (SI)(DX*4), X0
	MOVOU 16(SI)(DX*4), X1

	// Stop before a turn holding an expired entry: x-1 <u lim (an empty
	// slot's 0 becomes the largest value).
	MOVO X0, X2
	PADDL X12, X2
	PXOR X11, X2
	MOVO X1, X3
	PADDL X12, X3
	PXOR X11, X3
	MOVO X8, X4
	PCMPGTL X2, X4
	MOVO X8, X5
	PCMPGTL X3, X5
	POR X5, X4
	PMOVMSKB X4, AX
	TESTL AX, AX
	JNZ done

	// x ≥ t ⇔ x^S >s (t-1)^S: -1 in the lanes that count, subtracted.
	PXOR X11, X0
	PXOR X11, X1
	MOVO X0, X2
	PCMPGTL X9, X2
	PSUBL X2, X13
	MOVO X1, X3
	PCMPGTL X9, X3
	PSUBL X3, X13
	PCMPGTL X10, X0
	PSUBL X0, X14
	PCMPGTL X10, X1
	PSUBL X1, X14

	ADDQ $8, DX
	CMPQ DX, CX
	JLE loop

done:
	MOVQ acc+32(FP), DI
	MOVOU X13, (DI)
	MOVOU X14, 16(DI)
	MOVQ DX, ret+40(FP)
	RET
