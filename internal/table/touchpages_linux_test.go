package table

import (
	"syscall"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// freshWords maps pages pages of fresh anonymous memory, none of them
// faulted in yet, and returns them as words, with a function that reports
// which pages are resident (mincore).
func freshWords(t *testing.T, pages int) (w []uint64, resident func() []bool) {
	t.Helper()
	size := pages * syscall.Getpagesize()
	b, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	require.NoError(t, err)
	t.Cleanup(func() { syscall.Munmap(b) })
	resident = func() []bool {
		vec := make([]byte, pages)
		_, _, errno := syscall.RawSyscall(syscall.SYS_MINCORE, uintptr(unsafe.Pointer(&b[0])), uintptr(size), uintptr(unsafe.Pointer(&vec[0])))
		require.Zero(t, errno, "mincore")
		in := make([]bool, pages)
		for i, v := range vec {
			in[i] = v&1 != 0
		}
		return in
	}
	require.NotContains(t, resident(), true, "a fresh mapping has no page in yet")
	return unsafe.Slice((*uint64)(unsafe.Pointer(&b[0])), size/8), resident
}

func allTrue(n int) []bool {
	s := make([]bool, n)
	for i := range s {
		s[i] = true
	}
	return s
}

// TestTouchPagesFaultsEveryPageIn: after touchPages, every page of the
// words, including the two it only partly covers, is in, so a copy into them
// takes no fault.
func TestTouchPagesFaultsEveryPageIn(t *testing.T) {
	const pages = 9
	all, resident := freshWords(t, pages)
	touchPages(all[3 : len(all)-1]) // not starting or ending on a page boundary
	require.Equal(t, allTrue(pages), resident())
}
