//go:build !linux

package table

// prefault faults in every page of w for writing by writing a word on each
// (see prefault_linux.go).
func prefault(w []uint64) { touchPages(w) }
