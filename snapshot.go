package activeusers

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"math/bits"
	"os"
	"slices"
)

// Snapshot format: docs/snapshot.md describes it byte by byte.
const (
	snapMagic   = "AUSNAP\r\n" // \r\n catches transfers that rewrite line ends
	snapVersion = 1
	snapHashXX  = 1 // xxhash64 of the uid's bytes, seed 0
	// snapHashKeyed: snapHashXX under the keyed permutation of WithSecret;
	// header bytes 33–39 identify the key (Tracker.SecretCheck).
	snapHashKeyed = 2
	snapHeader    = 8 + 2 + 1 + 1 + 4 + 8 + 8 + 1 + 7
	snapTrailer   = 4

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
// segment's entries under that segment's lock alone, so Seen waits for at most
// one segment's copy; sorting and encoding happen after, with no lock held.
func (t *Tracker) WriteTo(w io.Writer) (int64, error) {
	now := t.nowSec()
	m := snapMeta{now: now}
	if t.pn != nil {
		m.keyed, m.check = true, t.pn.check
	}
	b := encodeSnapshot(m, t.entries(t.cutoff(now)))
	n, err := w.Write(b)
	return int64(n), err
}

// snapMeta is what a snapshot's header says besides its entries.
type snapMeta struct {
	now   int64   // snapshot time, Unix seconds
	keyed bool    // hashes are WithSecret pseudonyms
	check [7]byte // with keyed: which key
}

func encodeSnapshot(m snapMeta, es []entry) []byte {
	now := m.now
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
	if m.keyed {
		b[10] = snapHashKeyed
		copy(b[33:40], m.check[:])
	}
	b[11] = 0                                // reserved
	binary.LittleEndian.PutUint32(b[12:], 1) // resolution: seconds per time unit
	binary.LittleEndian.PutUint64(b[16:], uint64(now))
	binary.LittleEndian.PutUint64(b[24:], uint64(len(es)))
	b[32] = byte(low)
	// b[33:40]: the key check with snapHashKeyed, else reserved, zero
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

// snapReader hands out a snapshot's bytes from a fixed buffer refilled from r,
// folding each byte into the checksum as it is consumed. Reading in pieces is
// what lets a decoder refuse a file by its first bytes: a 2 GiB file that is
// not a snapshot costs one buffer, not 2 GiB of memory.
type snapReader struct {
	r      io.Reader
	buf    []byte
	pos    int    // next unread byte
	end    int    // end of the bytes read into buf
	summed int    // buf[:summed] is folded into crc
	crc    uint32 // CRC-32C of the bytes consumed so far
	err    error  // the read error that ended the input (io.EOF at its end)
	n      int64  // bytes read from r
	empty  int    // reads in a row that returned nothing and no error
}

// maxEmptyReads is how many reads in a row may return nothing, and no error,
// before the reader is taken to be stuck (bufio's limit too).
const maxEmptyReads = 100

// snapReadBuf is the read buffer: large enough that the reads are few, small
// enough that refusing a bad file costs nothing.
const snapReadBuf = 64 << 10

// fill makes at least k (≤ snapReadBuf) unread bytes available, unless the
// input ends first, and reports whether it did.
func (s *snapReader) fill(k int) bool {
	for s.end-s.pos < k && s.err == nil {
		if s.buf == nil {
			s.buf = make([]byte, snapReadBuf)
		}
		if s.end == len(s.buf) { // keep what is unread; drop what is summed
			s.sum()
			s.end = copy(s.buf, s.buf[s.pos:s.end])
			s.pos, s.summed = 0, 0
		}
		n, err := s.r.Read(s.buf[s.end:])
		s.end += n
		s.n += int64(n)
		switch {
		case err != nil:
			s.err = err
		case n > 0:
			s.empty = 0
		default:
			if s.empty++; s.empty == maxEmptyReads {
				s.err = io.ErrNoProgress // as bufio: a reader that never yields
			}
		}
	}
	return s.end-s.pos >= k
}

// sum folds the consumed bytes into the checksum.
func (s *snapReader) sum() {
	s.crc = crc32.Update(s.crc, castagnoli, s.buf[s.summed:s.pos])
	s.summed = s.pos
}

// readErr is the error for input that ended too soon: the reader's own error,
// or truncation.
func (s *snapReader) readErr(format string, args ...any) error {
	if s.err != nil && s.err != io.EOF {
		return fmt.Errorf("activeusers: reading snapshot: %w", s.err)
	}
	return badSnapshot(format, args...)
}

// decodeSnapshot reads one whole snapshot from r, checking the header before
// anything else, and r must end with it. It allocates in proportion to the
// entries actually read, never to the count the header claims, and reads no
// further than that count can take. sizeHint, if not negative, is how many
// bytes r holds: it lets a count the bytes cannot hold be refused at once.
func decodeSnapshot(r io.Reader, sizeHint int64) (m snapMeta, es []entry, read int64, err error) {
	var now int64
	s := &snapReader{r: r}
	defer func() { read = s.n }()
	s.fill(snapHeader)
	h := s.buf[s.pos:s.end]
	if len(h) < len(snapMagic) || string(h[:len(snapMagic)]) != snapMagic {
		if len(h) < len(snapMagic) && s.err != nil && s.err != io.EOF {
			return snapMeta{}, nil, 0, s.readErr("")
		}
		return snapMeta{}, nil, 0, badSnapshot("not a snapshot (wrong magic bytes)")
	}
	if len(h) < snapHeader {
		return snapMeta{}, nil, 0, s.readErr("truncated: %d bytes is shorter than the header", len(h))
	}
	if v := binary.LittleEndian.Uint16(h[8:]); v != snapVersion {
		return snapMeta{}, nil, 0, badSnapshot("unsupported version %d (this build reads version %d)", v, snapVersion)
	}
	switch h[10] {
	case snapHashXX:
	case snapHashKeyed:
		m.keyed = true
		copy(m.check[:], h[33:40])
	default:
		return m, nil, 0, badSnapshot("unknown hash function %d (this build reads xxhash64, 1, and keyed xxhash64, 2)", h[10])
	}
	if r := binary.LittleEndian.Uint32(h[12:]); r != 1 {
		return snapMeta{}, nil, 0, badSnapshot("unsupported resolution of %d seconds (this build keeps 1)", r)
	}
	now = int64(binary.LittleEndian.Uint64(h[16:]))
	count := binary.LittleEndian.Uint64(h[24:])
	low := int(h[32])
	if count > MaxSnapshotEntries {
		return snapMeta{}, nil, 0, badSnapshot("oversized: %d entries, more than the %d allowed", count, uint64(MaxSnapshotEntries))
	}
	if low > 8 {
		return snapMeta{}, nil, 0, badSnapshot("corrupt header: %d raw gap bytes", low)
	}
	if now < 0 || now > math.MaxUint32 {
		return snapMeta{}, nil, 0, badSnapshot("corrupt header: snapshot time %d is outside 1970–2106", now)
	}
	// Each entry takes at least 2+low bytes: a count that cannot fit is
	// refused before anything is allocated or read for it.
	if body := sizeHint - snapHeader - snapTrailer; sizeHint >= 0 && count > uint64(max(body, 0))/uint64(2+low) {
		return snapMeta{}, nil, 0, badSnapshot("truncated: %d entries declared in %d bytes", count, max(body, 0))
	}
	s.pos += snapHeader
	// Grow as entries arrive rather than trust the count: a hostile header
	// then costs what its bytes are worth.
	es = make([]entry, 0, min(count, 1<<16))
	var prev uint64
	for i := range count {
		s.fill(maxEntryBytes) // fewer at the end of the input
		p := s.buf[s.pos:s.end]
		hi, n := binary.Uvarint(p)
		if n == 0 || len(p) < n+low {
			return snapMeta{}, nil, 0, s.readErr("truncated: the input ends in entry %d of %d", i, count)
		}
		if n < 0 {
			return snapMeta{}, nil, 0, badSnapshot("corrupt entry %d: bad gap", i)
		}
		var lo uint64
		for k := range low {
			lo |= uint64(p[n+k]) << (8 * k)
		}
		if low > 0 && hi > math.MaxUint64>>(8*low) {
			return snapMeta{}, nil, 0, badSnapshot("corrupt entry %d: gap overflows 64 bits", i)
		}
		gap := hi<<(8*low) | lo
		// A plain hash is never 0; a pseudonym (snapHashKeyed) may be, first.
		if (gap == 0 && i > 0) || gap > math.MaxUint64-prev || (prev+gap == 0 && !m.keyed) {
			return snapMeta{}, nil, 0, badSnapshot("corrupt entry %d: hashes not strictly increasing", i)
		}
		prev += gap
		age, m := binary.Uvarint(p[n+low:])
		if m == 0 {
			return snapMeta{}, nil, 0, s.readErr("truncated: the input ends in entry %d of %d", i, count)
		}
		if m < 0 || age > math.MaxUint32 {
			return snapMeta{}, nil, 0, badSnapshot("corrupt entry %d: bad age", i)
		}
		s.pos += n + low + m
		es = append(es, entry{hash: prev, sec: toSec(now - int64(age))})
	}
	s.sum()
	if !s.fill(snapTrailer) {
		return snapMeta{}, nil, 0, s.readErr("truncated: the input ends in the checksum")
	}
	if sum := binary.LittleEndian.Uint32(s.buf[s.pos:]); sum != s.crc {
		return snapMeta{}, nil, 0, badSnapshot("checksum mismatch (corrupt): stored %08x, computed %08x", sum, s.crc)
	}
	s.pos += snapTrailer
	if s.fill(1) {
		return snapMeta{}, nil, 0, badSnapshot("corrupt: bytes after the last entry's checksum (the header declares %d entries)", count)
	}
	if s.err != io.EOF {
		return snapMeta{}, nil, 0, s.readErr("")
	}
	m.now = now
	return m, es, s.n, nil
}

// ReadFrom reads a snapshot from r and merges it in: for each account the
// later of the two times wins, so loading is idempotent and loading several
// instances' snapshots gives their union. Entries already past retention are
// skipped and times ahead of the tracker's clock are recorded as its now.
//
// Loading is all or nothing: if r does not hold exactly one valid snapshot,
// ReadFrom returns an error wrapping ErrBadSnapshot that says what is wrong
// (or the reader's own error), and the tracker is exactly as it was. The
// header is checked first and the read goes no further than the entries it
// declares, so input that is not a snapshot is refused after its first bytes.
// Memory is proportional to the entries read. It returns the bytes read.
func (t *Tracker) ReadFrom(r io.Reader) (int64, error) {
	m, es, n, err := decodeSnapshot(r, sizeOf(r))
	if err != nil {
		return n, err
	}
	if m.keyed {
		switch {
		case t.pn == nil:
			return n, badSnapshot("written under a secret (WithSecret), and this tracker has none")
		case t.pn.check != m.check:
			return n, badSnapshot("written under a different secret (key check %x, this tracker's %x)", m.check, t.pn.check)
		}
		buf := new([16]byte)
		for i := range es {
			es[i].hash = t.pn.decode(es[i].hash, buf)
		}
	}
	t.merge(es)
	return n, nil
}

// sizeOf is how many bytes r has left to read, if it can say cheaply; -1
// otherwise.
func sizeOf(r io.Reader) int64 {
	switch r := r.(type) {
	case interface{ Len() int }: // bytes.Reader, bytes.Buffer, strings.Reader
		return int64(r.Len())
	case *os.File:
		fi, err := r.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			return -1
		}
		off, err := r.Seek(0, io.SeekCurrent)
		if err != nil {
			return -1
		}
		return fi.Size() - off
	}
	return -1
}

// merge adds entries, later time winning, as Seen would: each takes its
// segment's lock alone, for one entry.
func (t *Tracker) merge(es []entry) {
	now := t.nowSec()
	for _, e := range es {
		t.record(e.hash, min(int64(e.sec), now), now)
	}
}
