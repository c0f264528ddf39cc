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

// TestPopulateFaultsPagesInWithoutWriting checks the madvise alone: every
// page under the words, including the two it only partly covers, is in
// afterwards, and no word has changed.
func TestPopulateFaultsPagesInWithoutWriting(t *testing.T) {
	const pages = 16
	all, resident := freshWords(t, pages)
	pw := len(all) / pages
	// Words from inside the first page to inside the last, as a heap array
	// that does not start or end on a page boundary.
	w := all[5 : len(all)-7]
	if !populate(w) {
		t.Skip("this kernel refuses MADV_POPULATE_WRITE; prefault touches pages instead")
	}
	require.Equal(t, allTrue(pages), resident())
	for i, v := range all {
		require.Zerof(t, v, "word %d (page %d) written", i, i/pw)
	}

	// Over words already written, populating changes none of them.
	for i := range all {
		all[i] = uint64(i) * 0x9E3779B97F4A7C15
	}
	require.True(t, populate(w))
	for i, v := range all {
		require.Equal(t, uint64(i)*0x9E3779B97F4A7C15, v)
	}
}

// TestPrefaultFaultsEveryPageIn checks prefault with and without the
// madvise (a kernel that refuses it): either way every page of the words is
// in afterwards, so a copy into them takes no fault.
func TestPrefaultFaultsEveryPageIn(t *testing.T) {
	defer noPopulate.Store(noPopulate.Load())
	for _, refused := range []bool{false, true} {
		noPopulate.Store(refused)
		const pages = 9
		all, resident := freshWords(t, pages)
		prefault(all[3 : len(all)-1])
		require.Equal(t, allTrue(pages), resident(), "madvise refused: %v", refused)
	}
}
