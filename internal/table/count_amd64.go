//go:build !purego

package table

import "sync/atomic"

// vectorCount says that countFast counts here.
const vectorCount = true

// countBlocks2 counts into acc the slots of p[:n] whose time is at least t0
// (acc[0:4], a lane each) and at least t1 (acc[4:8]), eight slots a turn,
// and returns how many it read: a multiple of eight, stopping before the
// first turn that holds an expired entry (a time x with x-1 < lim) or
// cannot be whole. Its 32-bit arguments come with the top bit flipped, and
// the thresholds less one (see countFast).
//
//go:noescape
func countBlocks2(p *atomic.Uint32, n int, lim, t0, t1 uint32, acc *[8]uint32) int

// countBlocks4 is countBlocks2 for up to four thresholds, given in t as
// countBlocks2 takes t0 and t1 and counted into acc[4j:4j+4]. An unused
// threshold is (1<<32-1)^(1<<31), which no flipped time exceeds.
//
//go:noescape
func countBlocks4(p *atomic.Uint32, n int, lim uint32, t *[4]uint32, acc *[16]uint32) int

// countFast counts what countRun does, with SSE2 eight slots at a time, and
// returns where it stopped; countRun carries on from there slot by slot. It
// compares four slots an instruction, a few times faster than the scalar
// loop (docs/design.md, "What a count reads"). One or two thresholds, the
// common counts, have a kernel of their own: the two accumulators it leaves
// out take a quarter off the pass.
func countFast(s []atomic.Uint32, cutoff uint32, th *[4]uint64, c *[4]int) int {
	if len(s) < 8 {
		return 0
	}
	const flip = 1 << 31
	lim := max(cutoff, 1) - 1
	// th[j] is 1<<32 when unused: less one, no time exceeds it.
	var t [4]uint32
	for j := range t {
		t[j] = uint32(th[j]-1) ^ flip
	}
	if th[2] == 1<<32 {
		var acc [8]uint32
		n := countBlocks2(&s[0], len(s), lim^flip, t[0], t[1], &acc)
		c[0] += int(acc[0] + acc[1] + acc[2] + acc[3])
		c[1] += int(acc[4] + acc[5] + acc[6] + acc[7])
		return n
	}
	var acc [16]uint32
	n := countBlocks4(&s[0], len(s), lim^flip, &t, &acc)
	for j := range c {
		a := acc[4*j : 4*j+4]
		c[j] += int(a[0] + a[1] + a[2] + a[3])
	}
	return n
}
