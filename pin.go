//go:build !activeusers_nolinkname

package activeusers

import (
	_ "unsafe" // go:linkname
)

// Pinning. Every hold of a shard's lock, and every directory doubling, runs
// pinned to its P with the runtime's procPin: while pinned, the scheduler
// never preempts the goroutine (nor does the collector make it assist or
// start a cycle). With more goroutines than cores, a holder preempted
// mid-insert stayed off its core for tens of milliseconds, and every insert
// into its shard waited: that was the growth tail (docs/design.md, "Holders
// are never descheduled", with the A/B that keeps it).
//
// procPin and procUnpin are the runtime's own functions, which sync.Pool
// uses; the runtime keeps them for packages outside the standard library
// that call them this way (go.dev/issue/67401). Build with
// -tags activeusers_nolinkname for a plain-mutex build without them
// (pin_plain.go), for the day a Go release closes that door: the same
// counts, a longer tail while growing.

//go:linkname procPin runtime.procPin
func procPin() int

//go:linkname procUnpin runtime.procUnpin
func procUnpin()

// waitPinned is one turn of a pinned goroutine's wait for another pinned
// goroutine: that one is running and done within a directory copy, so spin.
// Yielding would queue this goroutine behind every runnable one while it
// holds a shard's lock — the stall pinning exists to avoid.
func waitPinned() {}
