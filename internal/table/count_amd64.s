//go:build !purego

#include "textflag.h"

// Both kernels read eight slots a turn into X0 and X1 and flip the top bit
// of each time, so that the signed compare PCMPGTL orders them as unsigned:
// x <u y ⇔ x^S <s y^S, S = 1<<31. Every 32-bit argument arrives flipped.

// TURN loads the eight times at SI+4·DX into X0 and X1, flipped with sign,
// and jumps to done if they hold an expired entry, a time x with x-1 <u lim
// (an empty slot's 0 becomes the largest value): (x-1)^S <s lim^S, where
// (x-1)^S = (x^S)-1. It uses X2 to X5 and AX.
#define TURN(sign, lim, done) \
	MOVOU (SI)(DX*4), X0; \
	MOVOU 16(SI)(DX*4), X1; \
	PXOR sign, X0; \
	PXOR sign, X1; \
	PCMPEQL X4, X4; \
	MOVO X0, X2; \
	PADDL X4, X2; \
	MOVO X1, X3; \
	PADDL X4, X3; \
	MOVO lim, X4; \
	PCMPGTL X2, X4; \
	MOVO lim, X5; \
	PCMPGTL X3, X5; \
	POR X5, X4; \
	PMOVMSKB X4, AX; \
	TESTL AX, AX; \
	JNZ done

// COUNT adds, in each lane of acc, the times of X0 and X1 that reach the
// threshold t: x ≥ t ⇔ x^S >s (t-1)^S, a compare that leaves -1 in the
// lanes that count, subtracted. It uses X2 and X3. COUNT_LAST does the same
// in X0 and X1 themselves, for the turn's last threshold.
#define COUNT(t, acc) \
	MOVO X0, X2; \
	PCMPGTL t, X2; \
	PSUBL X2, acc; \
	MOVO X1, X3; \
	PCMPGTL t, X3; \
	PSUBL X3, acc

#define COUNT_LAST(t, acc) \
	PCMPGTL t, X0; \
	PSUBL X0, acc; \
	PCMPGTL t, X1; \
	PSUBL X1, acc

// func countBlocks2(p *atomic.Uint32, n int, lim, t0, t1 uint32, acc *[8]uint32) int
//
// SSE2 (every amd64 has it).
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
	PXOR X13, X13       // counts of x ≥ t0, a lane each
	PXOR X14, X14       // counts of x ≥ t1
	XORQ DX, DX         // slots done
	SUBQ $8, CX         // the last start of a whole turn
	JL done

loop:
	TURN(X11, X8, done)
	COUNT(X9, X13)
	COUNT_LAST(X10, X14)

	ADDQ $8, DX
	CMPQ DX, CX
	JLE loop

done:
	MOVQ acc+32(FP), DI
	MOVOU X13, (DI)
	MOVOU X14, 16(DI)
	MOVQ DX, ret+40(FP)
	RET

// func countBlocks4(p *atomic.Uint32, n int, lim uint32, t *[4]uint32, acc *[16]uint32) int
//
// countBlocks2 for up to four thresholds. It needs all sixteen XMM
// registers: the cutoff, the sign and four thresholds broadcast, four
// accumulators, two of data and four of scratch.
TEXT ·countBlocks4(SB), NOSPLIT, $0-48
	MOVQ p+0(FP), SI
	MOVQ n+8(FP), CX
	MOVL lim+16(FP), AX
	MOVL AX, X6
	PSHUFL $0, X6, X6 // lim^S in every lane
	MOVL $0x80000000, AX
	MOVL AX, X7
	PSHUFL $0, X7, X7 // S
	MOVQ t+24(FP), DI
	MOVOU (DI), X11
	PSHUFL $0x00, X11, X8  // (t0-1)^S
	PSHUFL $0x55, X11, X9  // (t1-1)^S
	PSHUFL $0xaa, X11, X10 // (t2-1)^S
	PSHUFL $0xff, X11, X11 // (t3-1)^S
	PXOR X12, X12          // counts of x ≥ t0, a lane each
	PXOR X13, X13          // … ≥ t1
	PXOR X14, X14          // … ≥ t2
	PXOR X15, X15          // … ≥ t3
	XORQ DX, DX            // slots done
	SUBQ $8, CX            // the last start of a whole turn
	JL done4

loop4:
	TURN(X7, X6, done4)
	COUNT(X8, X12)
	COUNT(X9, X13)
	COUNT(X10, X14)
	COUNT_LAST(X11, X15)

	ADDQ $8, DX
	CMPQ DX, CX
	JLE loop4

done4:
	MOVQ acc+32(FP), DI
	MOVOU X12, (DI)
	MOVOU X13, 16(DI)
	MOVOU X14, 32(DI)
	MOVOU X15, 48(DI)
	MOVQ DX, ret+40(FP)
	RET
