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

// func countBlocks4(p *atomic.Uint32, n int, lim uint32, t *[4]uint32, acc *[16]uint32) int
//
// countBlocks2 for up to four thresholds, eight slots a turn. It needs all
// sixteen XMM registers: five broadcasts and the sign, four accumulators,
// two of data and four of scratch. Times are flipped first, and the test
// against the cutoff uses (x-1)^S = (x^S)-1, which frees the register that
// held -1 in countBlocks2.
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
	MOVOU (SI)(DX*4), X0
	MOVOU 16(SI)(DX*4), X1
	PXOR X7, X0
	PXOR X7, X1

	// Stop before a turn holding an expired entry: (x-1)^S <s lim^S.
	PCMPEQL X4, X4
	MOVO X0, X2
	PADDL X4, X2
	MOVO X1, X3
	PADDL X4, X3
	MOVO X6, X4
	PCMPGTL X2, X4
	MOVO X6, X5
	PCMPGTL X3, X5
	POR X5, X4
	PMOVMSKB X4, AX
	TESTL AX, AX
	JNZ done4

	// x ≥ t ⇔ x^S >s (t-1)^S: -1 in the lanes that count, subtracted.
	MOVO X0, X2
	PCMPGTL X8, X2
	PSUBL X2, X12
	MOVO X1, X3
	PCMPGTL X8, X3
	PSUBL X3, X12
	MOVO X0, X4
	PCMPGTL X9, X4
	PSUBL X4, X13
	MOVO X1, X5
	PCMPGTL X9, X5
	PSUBL X5, X13
	MOVO X0, X2
	PCMPGTL X10, X2
	PSUBL X2, X14
	MOVO X1, X3
	PCMPGTL X10, X3
	PSUBL X3, X14
	PCMPGTL X11, X0
	PSUBL X0, X15
	PCMPGTL X11, X1
	PSUBL X1, X15

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
