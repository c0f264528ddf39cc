//go:build (!amd64 && !arm64) || purego

package table

import "unsafe"

// prefetchLines does nothing where there is no assembly for it: a plain
// load in its place would wait for the memory it was meant to hide.
func prefetchLines(p unsafe.Pointer, lines int) {}
