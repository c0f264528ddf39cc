//go:build (amd64 || arm64) && !purego

package table

import "unsafe"

// prefetchLines asks the processor to bring lines 64-byte lines from p on
// into its cache, and returns without waiting for them: an instruction
// (PREFETCHT0, PRFM) that, unlike a load, never stalls what follows and
// never faults. Go has no intrinsic for it outside the runtime.
//
//go:noescape
func prefetchLines(p unsafe.Pointer, lines int)

// prefetchSlot is prefetchLines for the two lines of one slot: its key's
// and its time's.
//
//go:noescape
func prefetchSlot(k, sec unsafe.Pointer)
