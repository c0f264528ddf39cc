//go:build (!amd64 && !arm64) || purego

package table

import (
	"sync/atomic"
	"unsafe"
)

// prefetchLines does nothing where there is no assembly for it: a plain
// load in its place would wait for the memory it was meant to hide.
func prefetchLines(p unsafe.Pointer, lines int) {}

// prefetchSlot loads the slot's key and time, whose values it drops: with no
// prefetch instruction, a load still overlaps this miss with the next.
func prefetchSlot(k, sec unsafe.Pointer) {
	(*atomic.Uint64)(k).Load() // atomic: the compiler keeps a load whose value is unused
	(*atomic.Uint32)(sec).Load()
}
