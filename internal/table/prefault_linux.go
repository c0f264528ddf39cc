//go:build linux

package table

import (
	"runtime"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// madvPopulateWrite is MADV_POPULATE_WRITE (Linux 5.14): fault a range's
// pages in, writable, as a write to each would, in one call and without
// writing anything.
const madvPopulateWrite = 23

// noPopulate is set once the kernel has refused MADV_POPULATE_WRITE for good:
// as unknown (EINVAL, before 5.14), or by a sandbox that filters madvise
// (EPERM, ENOSYS). Pages are touched one by one from then on. Other errors
// (a range not fully mapped, say) fall back for that call only.
var noPopulate atomic.Bool

// prefault faults in every page of w for writing, so that a later copy into
// it takes no page fault. It first asks the kernel for all of w's pages in
// one madvise call, then writes a word on each page as before: on the 2-core
// VM of the README, whose hypervisor shadows the guest's page tables, a page
// first written costs a trap into the guest kernel and then one into the
// hypervisor. The madvise takes the first for every page at once: over 64
// MiB of fresh 3-page mappings, writing a word a page cost 11–15 µs a page,
// and the madvise 1.3–2.2 µs a page plus 5.1–6.0 µs for the writes after it
// (which then took no fault the guest counted). On a machine without shadow
// paging the writes after it cost nothing.
func prefault(w []uint64) {
	if len(w) == 0 {
		return
	}
	populate(w)
	touchPages(w)
}

// populate asks the kernel to fault in every page of w for writing, in one
// madvise call, and reports whether it did. The range is rounded out to
// whole pages, which belong to the same mapping; populating changes no byte.
// The call is raw: it is brief, and its caller may be pinned.
func populate(w []uint64) bool {
	if noPopulate.Load() {
		return false
	}
	page := uintptr(syscall.Getpagesize())
	start := uintptr(unsafe.Pointer(&w[0])) &^ (page - 1)
	end := (uintptr(unsafe.Pointer(&w[len(w)-1])) + 8 + page - 1) &^ (page - 1)
	_, _, errno := syscall.RawSyscall(syscall.SYS_MADVISE, start, end-start, madvPopulateWrite)
	runtime.KeepAlive(w) // heap objects never move; this keeps w's alive
	switch errno {
	case syscall.EINVAL, syscall.EPERM, syscall.ENOSYS:
		noPopulate.Store(true)
	}
	return errno == 0
}
