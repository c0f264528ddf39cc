package activeusers

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"math/bits"
	"slices"
)

// Snapshot format: docs/snapshot.md describes it byte by byte.
const (
	snapMagic   = "AUSNAP\r\n" // \r\n catches transfers that rewrite line ends
	snapVersion = 1
	snapHashXX  = 1 // xxhash64 of the uid's bytes, seed 0
	snapHeader  = 8 + 2 + 1 + 1 + 4 + 8 + 8 + 1 + 7
	snapTrailer = 4

	// maxEntryBytes is the most one encoded entry can take: a 10-byte uvarint
	// of the delta's high part, 8 low bytes, and a 5-byte uvarint of the age.
	maxEntryBytes = 10 + 8 + 5

	// MaxSnapshotEntries bounds the entry count a snapshot may declare: a
	// hostile header cannot make a reader expect (or read) more than about
	// 23 bytes each of this.
	MaxSnapshotEntries = 1 << 32
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrBadSnapshot is wrapped by every error ReadFrom and LoadFile return for
// input that is not a valid snapshot: wrong magic or version, truncated,
// corrupt, failed checksum or oversized. The message says which.
var ErrBadSnapshot = errors.New("activeusers: bad snapshot")

func badSnapshot(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrBadSnapshot}, args...)...)
}

type entry struct {
	hash uint64
	sec  uint32
}

// entries copies out every entry seen at or after since.
func (t *Tracker) entries(since uint32) []entry {
	var out []entry
	t.forEntries(since, func(n int) { out = slices.Grow(out, n) }, func(key uint64, sec uint32) {
		out = append(out, entry{key, sec})
	})
	return out
}

// WriteTo writes a snapshot of every account within retention to w, in the
// format of docs/snapshot.md, and returns the bytes written. It copies each
// shard's entries under that shard's lock alone, so Seen waits for at most one
// shard's copy; sorting and encoding happen after, with no lock held.
func (t *Tracker) WriteTo(w io.Writer) (int64, error) {
	now := t.nowSec()
	b := encodeSnapshot(now, t.retSec, t.entries(t.cutoff(now)))
	n, err := w.Write(b)
	return int64(n), err
}

func encodeSnapshot(now, retSec int64, es []entry) []byte {
	slices.SortFunc(es, func(a, b entry) int { return cmp.Compare(a.hash, b.hash) })
	// Sorted hashes of n uniform 64-bit values are about 2⁶⁴/n apart: write
	// the low L bytes of each gap raw and the rest (a small number) as a
	// varint, with the L that makes the whole smallest. At a million users that
	// is 5 raw bytes and usually 1 varint byte, plus 1–3 bytes of age.
	var lens [65]int // how many gaps have each bit length
	var prev uint64
	for _, e := range es {
		lens[bits.Len64(e.hash-prev)]++
		prev = e.hash
	}
	low, best := 0, math.MaxInt
	for l := 0; l <= 8; l++ {
		size := 0
		for b, n := range lens {
			size += n * (l + max(1, (b-8*l+6)/7))
		}
		if size < best {
			low, best = l, size
		}
	}
	b := make([]byte, snapHeader, snapHeader+len(es)*9+snapTrailer)
	copy(b, snapMagic)
	binary.LittleEndian.PutUint16(b[8:], snapVersion)
	b[10] = snapHashXX
	b[11] = 0                                // reserved
	binary.LittleEndian.PutUint32(b[12:], 1) // resolution: seconds per time unit
	binary.LittleEndian.PutUint64(b[16:], uint64(now))
	binary.LittleEndian.PutUint64(b[24:], uint64(len(es)))
	b[32] = byte(low)
	// b[33:40] reserved, zero
	prev = 0
	for _, e := range es {
		gap := e.hash - prev
		prev = e.hash
		b = binary.AppendUvarint(b, gap>>(8*low))
		for k := range low {
			b = append(b, byte(gap>>(8*k)))
		}
		b = binary.AppendUvarint(b, uint64(max(now-int64(e.sec), 0)))
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// decodeSnapshot parses a whole snapshot. It allocates in proportion to the
// bytes given, never to the counts they claim.
func decodeSnapshot(b []byte) (now int64, es []entry, err error) {
	if len(b) < len(snapMagic) || string(b[:len(snapMagic)]) != snapMagic {
		return 0, nil, badSnapshot("not a snapshot (wrong magic bytes)")
	}
	if len(b) < snapHeader+snapTrailer {
		return 0, nil, badSnapshot("truncated: %d bytes is shorter than the header", len(b))
	}
	if v := binary.LittleEndian.Uint16(b[8:]); v != snapVersion {
		return 0, nil, badSnapshot("unsupported version %d (this build reads version %d)", v, snapVersion)
	}
	body, sum := b[:len(b)-snapTrailer], binary.LittleEndian.Uint32(b[len(b)-snapTrailer:])
	if got := crc32.Checksum(body, castagnoli); got != sum {
		return 0, nil, badSnapshot("checksum mismatch (truncated or corrupt): stored %08x, computed %08x", sum, got)
	}
	if b[10] != snapHashXX {
		return 0, nil, badSnapshot("unknown hash function %d (this build writes xxhash64, 1)", b[10])
	}
	if r := binary.LittleEndian.Uint32(b[12:]); r != 1 {
		return 0, nil, badSnapshot("unsupported resolution of %d seconds (this build keeps 1)", r)
	}
	now = int64(binary.LittleEndian.Uint64(b[16:]))
	count := binary.LittleEndian.Uint64(b[24:])
	low := int(b[32])
	if count > MaxSnapshotEntries {
		return 0, nil, badSnapshot("oversized: %d entries, more than the %d allowed", count, uint64(MaxSnapshotEntries))
	}
	if low > 8 {
		return 0, nil, badSnapshot("corrupt header: %d raw gap bytes", low)
	}
	if now < 0 || now > math.MaxUint32 {
		return 0, nil, badSnapshot("corrupt header: snapshot time %d is outside 1970–2106", now)
	}
	p := body[snapHeader:]
	// Each entry takes at least 2+low bytes: a count that cannot fit is
	// refused before anything is allocated for it.
	if count > uint64(len(p))/uint64(2+low) {
		return 0, nil, badSnapshot("truncated: %d entries declared in %d bytes", count, len(p))
	}
	es = make([]entry, 0, count)
	var prev uint64
	for i := range count {
		hi, n := binary.Uvarint(p)
		if n <= 0 || len(p) < n+low {
			return 0, nil, badSnapshot("corrupt entry %d", i)
		}
		p = p[n:]
		var lo uint64
		for k := range low {
			lo |= uint64(p[k]) << (8 * k)
		}
		p = p[low:]
		if low > 0 && hi > math.MaxUint64>>(8*low) {
			return 0, nil, badSnapshot("corrupt entry %d: gap overflows 64 bits", i)
		}
		gap := hi<<(8*low) | lo
		if (gap == 0 && i > 0) || gap > math.MaxUint64-prev || prev+gap == 0 {
			return 0, nil, badSnapshot("corrupt entry %d: hashes not strictly increasing", i)
		}
		prev += gap
		age, n := binary.Uvarint(p)
		if n <= 0 || age > math.MaxUint32 {
			return 0, nil, badSnapshot("corrupt entry %d: bad age", i)
		}
		p = p[n:]
		es = append(es, entry{hash: prev, sec: toSec(now - int64(age))})
	}
	if len(p) != 0 {
		return 0, nil, badSnapshot("corrupt: %d bytes after the last entry", len(p))
	}
	return now, es, nil
}

// ReadFrom reads a snapshot from r until EOF and merges it in: for each
// account the later of the two times wins, so loading is idempotent and
// loading several instances' snapshots gives their union. Entries already past
// retention are skipped and times in the future are clamped to now.
//
// Loading is all or nothing: if r does not hold a valid snapshot, ReadFrom
// returns an error wrapping ErrBadSnapshot that says what is wrong, and the
// tracker is exactly as it was. It returns the bytes read.
func (t *Tracker) ReadFrom(r io.Reader) (int64, error) {
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(r, snapHeader+MaxSnapshotEntries*maxEntryBytes+snapTrailer))
	if err != nil {
		return n, fmt.Errorf("activeusers: reading snapshot: %w", err)
	}
	_, es, err := decodeSnapshot(buf.Bytes())
	if err != nil {
		return n, err
	}
	t.merge(es)
	return n, nil
}

// merge adds entries, later time winning, one shard at a time.
func (t *Tracker) merge(es []entry) {
	now := t.nowSec()
	cutoff, nowSec := t.cutoff(now), toSec(now)
	// Group by shard so that each lock is taken once.
	byShard := make([][]entry, len(t.shards))
	for _, e := range es {
		if e.sec < cutoff {
			continue
		}
		e.sec = min(e.sec, nowSec)
		m := t.mix.Mix(e.hash)
		byShard[m&t.mask] = append(byShard[m&t.mask], e)
	}
	for i, part := range byShard {
		if len(part) == 0 {
			continue
		}
		s := &t.shards[i]
		s.mu.Lock()
		for _, e := range part {
			s.tab.Merge(e.hash, t.mix.Mix(e.hash), e.sec)
		}
		s.mu.Unlock()
	}
}
