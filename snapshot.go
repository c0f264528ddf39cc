package activeusers

import (
	"bufio"
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
	"unicode/utf8"
)

// Snapshot format: docs/snapshot.md describes it byte by byte.
const (
	snapMagic = "AUSNAP\r\n" // \r\n catches transfers that rewrite line ends
	// snapVersion is what a tracker with dimensions writes: version 1 and its
	// segments. A tracker without writes version 1, which older builds read.
	snapVersion  = 2
	snapVersion1 = 1
	snapHashXX   = 1 // xxhash64 of the uid's bytes, seed 0
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

// entries copies out every entry of st seen at or after since.
func (t *Tracker) entries(st *set, since uint32) []entry {
	var out []entry
	t.forEntries(st, since, func(n int) { out = slices.Grow(out, n) }, func(key uint64, sec uint32) {
		out = append(out, entry{key, sec})
	})
	return out
}

// WriteTo writes a snapshot of every account within retention to w, in the
// format of docs/snapshot.md, and returns the bytes written: with
// WithDimensions, version 2, which holds each segment's accounts too; without,
// version 1. It copies each shard's entries under that shard's lock alone,
// so Seen waits for at most one shard's copy; sorting and encoding happen
// after, with no lock held.
func (t *Tracker) WriteTo(w io.Writer) (int64, error) {
	now := t.nowSec()
	cutoff := t.cutoff(now)
	snap := snapshot{snapMeta: snapMeta{now: now}, es: t.entries(t.all, cutoff)}
	if t.pn != nil {
		snap.keyed, snap.check = true, t.pn.check
	}
	for _, d := range t.dims {
		vals, _ := d.snapshot()
		sd := snapDim{name: d.name}
		for _, v := range vals {
			sd.values = append(sd.values, snapValue{name: v.name, es: t.entries(v.set, cutoff)})
		}
		snap.dims = append(snap.dims, sd)
	}
	b := encodeSnapshot(snap)
	n, err := w.Write(b)
	return int64(n), err
}

// snapMeta is what a snapshot's header says besides its entries.
type snapMeta struct {
	now   int64   // snapshot time, Unix seconds
	keyed bool    // hashes are WithSecret pseudonyms
	check [7]byte // with keyed: which key
	v2    bool    // version 2: has a segments section (perhaps of no dimensions)
}

// snapshot is a decoded snapshot: its header, the accounts, and with
// version 2 each dimension's values and their accounts.
type snapshot struct {
	snapMeta
	es   []entry
	dims []snapDim
}

type snapDim struct {
	name   string
	values []snapValue
}

type snapValue struct {
	name string
	es   []entry
}

func encodeSnapshot(snap snapshot) []byte {
	b := make([]byte, snapHeader, snapHeader+len(snap.es)*9+snapTrailer)
	copy(b, snapMagic)
	binary.LittleEndian.PutUint16(b[8:], snapVersion1)
	b[10] = snapHashXX
	if snap.keyed {
		b[10] = snapHashKeyed
		copy(b[33:40], snap.check[:])
	}
	b[11] = 0                                // reserved
	binary.LittleEndian.PutUint32(b[12:], 1) // resolution: seconds per time unit
	binary.LittleEndian.PutUint64(b[16:], uint64(snap.now))
	binary.LittleEndian.PutUint64(b[24:], uint64(len(snap.es)))
	// b[33:40]: the key check with snapHashKeyed, else reserved, zero
	b, low := appendEntries(b, snap.es, snap.now)
	b[32] = low // after: appending may have moved b
	if snap.v2 || len(snap.dims) > 0 {
		binary.LittleEndian.PutUint16(b[8:], snapVersion)
		b = binary.AppendUvarint(b, uint64(len(snap.dims)))
		for _, d := range snap.dims {
			b = appendString(b, d.name)
			b = binary.AppendUvarint(b, uint64(len(d.values)))
			for _, v := range d.values {
				b = appendString(b, v.name)
				b = binary.AppendUvarint(b, uint64(len(v.es)))
				at := len(b)
				b, low = appendEntries(append(b, 0), v.es, snap.now)
				b[at] = low
			}
		}
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// appendEntries sorts es by hash and appends their encoding, and returns it
// and the number of raw gap bytes it chose.
func appendEntries(b []byte, es []entry, now int64) ([]byte, byte) {
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
	b = slices.Grow(b, best+len(es)*3)
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
	return b, byte(low)
}

// snapReader reads a snapshot through a bufio.Reader, folding each byte into
// the checksum as it is consumed. Reading in pieces is what lets a decoder
// refuse a file by its first bytes: a 2 GiB file that is not a snapshot
// costs one buffer, not 2 GiB of memory.
type snapReader struct {
	br  *bufio.Reader
	src countingReader // the input, and how much was read from it
	crc uint32         // CRC-32C of the bytes consumed so far
	err error          // the error that ended the input (io.EOF at its end)
}

// snapReadBuf is the read buffer: large enough that the reads are few, small
// enough that refusing a bad file costs nothing.
const snapReadBuf = 64 << 10

// entryWindow is how many bytes entries are decoded from at a time, between
// two folds into the checksum.
const entryWindow = 4 << 10

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// peek returns the unread bytes ahead, k of them (k ≤ snapReadBuf) unless
// the input ends first.
func (s *snapReader) peek(k int) []byte {
	p, err := s.br.Peek(k)
	if err != nil {
		s.err = err
	}
	return p
}

// consume folds p[:n], the first n unread bytes as peek returned them, into
// the checksum and moves past them.
func (s *snapReader) consume(p []byte, n int) {
	s.crc = crc32.Update(s.crc, castagnoli, p[:n])
	s.br.Discard(n)
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
func decodeSnapshot(r io.Reader, sizeHint int64) (snap snapshot, read int64, err error) {
	s := &snapReader{src: countingReader{r: r}}
	s.br = bufio.NewReaderSize(&s.src, snapReadBuf)
	snap, err = s.decode(sizeHint)
	if err != nil {
		return snapshot{}, s.src.n, err
	}
	return snap, s.src.n, nil
}

func (s *snapReader) decode(sizeHint int64) (snap snapshot, err error) {
	h := s.peek(snapHeader)
	if len(h) < len(snapMagic) || string(h[:len(snapMagic)]) != snapMagic {
		if len(h) < len(snapMagic) && s.err != nil && s.err != io.EOF {
			return snap, s.readErr("")
		}
		return snap, badSnapshot("not a snapshot (wrong magic bytes)")
	}
	if len(h) < snapHeader {
		return snap, s.readErr("truncated: %d bytes is shorter than the header", len(h))
	}
	switch v := binary.LittleEndian.Uint16(h[8:]); v {
	case snapVersion1:
	case snapVersion:
		snap.v2 = true
	default:
		return snap, badSnapshot("unsupported version %d (this build reads versions 1 and %d)", v, snapVersion)
	}
	switch h[10] {
	case snapHashXX:
	case snapHashKeyed:
		snap.keyed = true
		copy(snap.check[:], h[33:40])
	default:
		return snap, badSnapshot("unknown hash function %d (this build reads xxhash64, 1, and keyed xxhash64, 2)", h[10])
	}
	if r := binary.LittleEndian.Uint32(h[12:]); r != 1 {
		return snap, badSnapshot("unsupported resolution of %d seconds (this build keeps 1)", r)
	}
	now := int64(binary.LittleEndian.Uint64(h[16:]))
	count := binary.LittleEndian.Uint64(h[24:])
	low := int(h[32])
	if count > MaxSnapshotEntries {
		return snap, badSnapshot("oversized: %d entries, more than the %d allowed", count, uint64(MaxSnapshotEntries))
	}
	if low > 8 {
		return snap, badSnapshot("corrupt header: %d raw gap bytes", low)
	}
	if now < 0 || now > math.MaxUint32 {
		return snap, badSnapshot("corrupt header: snapshot time %d is outside 1970–2106", now)
	}
	// Each entry takes at least 2+low bytes: a count that cannot fit is
	// refused before anything is allocated or read for it.
	if body := sizeHint - snapHeader - snapTrailer; sizeHint >= 0 && count > uint64(max(body, 0))/uint64(2+low) {
		return snap, badSnapshot("truncated: %d entries declared in %d bytes", count, max(body, 0))
	}
	s.consume(h, snapHeader)
	snap.now = now
	if snap.es, err = s.entries(count, low, now, snap.keyed, ""); err != nil {
		return snapshot{}, err
	}
	if snap.v2 {
		if snap.dims, err = s.segments(now, snap.keyed); err != nil {
			return snapshot{}, err
		}
	}
	t := s.peek(snapTrailer)
	if len(t) < snapTrailer {
		return snapshot{}, s.readErr("truncated: the input ends in the checksum")
	}
	if sum := binary.LittleEndian.Uint32(t); sum != s.crc {
		return snapshot{}, badSnapshot("checksum mismatch (corrupt): stored %08x, computed %08x", sum, s.crc)
	}
	s.br.Discard(snapTrailer)
	if len(s.peek(1)) > 0 {
		return snapshot{}, badSnapshot("corrupt: bytes after the last entry's checksum (the header declares %d entries)", count)
	}
	if s.err != io.EOF {
		return snapshot{}, s.readErr("")
	}
	return snap, nil
}

// entries reads count entries of low raw gap bytes; where names the block in
// errors ("" for the accounts, " of plan=pro" for a segment).
func (s *snapReader) entries(count uint64, low int, now int64, keyed bool, where string) ([]entry, error) {
	// Grow as entries arrive rather than trust the count: a hostile header
	// then costs what its bytes are worth.
	es := make([]entry, 0, min(count, 1<<16))
	var prev uint64
	for i := uint64(0); i < count; {
		// Decode from a window of the input, and fold what was decoded into
		// the checksum once: an entry is a few bytes.
		w := s.peek(entryWindow)
		off := 0
		for ; i < count; i++ {
			p := w[off:]
			if len(p) < maxEntryBytes && len(w) == entryWindow {
				break // the entry may run past the window: take the next
			}
			hi, n := binary.Uvarint(p)
			if n == 0 || len(p) < n+low {
				return nil, s.readErr("truncated: the input ends in entry %d of %d%s", i, count, where)
			}
			if n < 0 {
				return nil, badSnapshot("corrupt entry %d%s: bad gap", i, where)
			}
			var lo uint64
			for k := range low {
				lo |= uint64(p[n+k]) << (8 * k)
			}
			if low > 0 && hi > math.MaxUint64>>(8*low) {
				return nil, badSnapshot("corrupt entry %d%s: gap overflows 64 bits", i, where)
			}
			gap := hi<<(8*low) | lo
			// A plain hash is never 0; a pseudonym (snapHashKeyed) may be, first.
			if (gap == 0 && i > 0) || gap > math.MaxUint64-prev || (prev+gap == 0 && !keyed) {
				return nil, badSnapshot("corrupt entry %d%s: hashes not strictly increasing", i, where)
			}
			prev += gap
			age, m := binary.Uvarint(p[n+low:])
			if m == 0 {
				return nil, s.readErr("truncated: the input ends in entry %d of %d%s", i, count, where)
			}
			if m < 0 || age > math.MaxUint32 {
				return nil, badSnapshot("corrupt entry %d%s: bad age", i, where)
			}
			off += n + low + m
			es = append(es, entry{hash: prev, sec: toSec(now - int64(age))})
		}
		s.consume(w, off)
	}
	return es, nil
}

// uvarint reads one uvarint no larger than limit; what names it in errors.
func (s *snapReader) uvarint(limit uint64, what string) (uint64, error) {
	p := s.peek(binary.MaxVarintLen64)
	v, n := binary.Uvarint(p)
	if n == 0 {
		return 0, s.readErr("truncated: the input ends in %s", what)
	}
	if n < 0 || v > limit {
		return 0, badSnapshot("corrupt %s: more than %d", what, limit)
	}
	s.consume(p, n)
	return v, nil
}

// str reads a uvarint length and that many bytes, at most limit.
func (s *snapReader) str(limit int, what string) (string, error) {
	n, err := s.uvarint(uint64(limit), what+"'s length")
	if err != nil {
		return "", err
	}
	p := s.peek(int(n))
	if len(p) < int(n) {
		return "", s.readErr("truncated: the input ends in %s", what)
	}
	v := string(p[:n])
	s.consume(p, int(n))
	return v, nil
}

// segments reads version 2's segments section.
func (s *snapReader) segments(now int64, keyed bool) ([]snapDim, error) {
	nd, err := s.uvarint(MaxDimensions, "the number of dimensions")
	if err != nil {
		return nil, err
	}
	dims := make([]snapDim, nd)
	for i := range dims {
		d := &dims[i]
		if d.name, err = s.str(maxDimensionName, "a dimension's name"); err != nil {
			return nil, err
		}
		if !labelName(d.name) || d.name == "window" {
			return nil, badSnapshot("corrupt: %q is not a dimension name", d.name)
		}
		for _, o := range dims[:i] {
			if o.name == d.name {
				return nil, badSnapshot("corrupt: dimension %q twice", d.name)
			}
		}
		nv, err := s.uvarint(MaxValues+1, "the number of values of "+d.name)
		if err != nil {
			return nil, err
		}
		d.values = make([]snapValue, 0, min(nv, 64))
		for range nv {
			var v snapValue
			if v.name, err = s.str(MaxValueLen, "a value of "+d.name); err != nil {
				return nil, err
			}
			if v.name == "" || !utf8.ValidString(v.name) {
				return nil, badSnapshot("corrupt: value %q of %s", v.name, d.name)
			}
			for _, o := range d.values {
				if o.name == v.name {
					return nil, badSnapshot("corrupt: value %q of %s twice", v.name, d.name)
				}
			}
			where := fmt.Sprintf(" of %s=%s", d.name, v.name)
			count, err := s.uvarint(MaxSnapshotEntries, "the entry count"+where)
			if err != nil {
				return nil, err
			}
			p := s.peek(1)
			if len(p) < 1 {
				return nil, s.readErr("truncated: the input ends before the entries%s", where)
			}
			low := int(p[0])
			if low > 8 {
				return nil, badSnapshot("corrupt: %d raw gap bytes%s", low, where)
			}
			s.consume(p, 1)
			if v.es, err = s.entries(count, low, now, keyed, where); err != nil {
				return nil, err
			}
			d.values = append(d.values, v)
		}
	}
	return dims, nil
}

// maxDimensionName bounds a dimension's name in a snapshot: a label name.
const maxDimensionName = 128

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
	snap, n, err := decodeSnapshot(r, sizeOf(r))
	if err != nil {
		return n, err
	}
	if snap.keyed {
		switch {
		case t.pn == nil:
			return n, badSnapshot("written under a secret (WithSecret), and this tracker has none")
		case t.pn.check != snap.check:
			return n, badSnapshot("written under a different secret (key check %x, this tracker's %x)", snap.check, t.pn.check)
		}
		buf := new([16]byte)
		decode := func(es []entry) {
			for i := range es {
				es[i].hash = t.pn.decode(es[i].hash, buf)
			}
		}
		decode(snap.es)
		for _, d := range snap.dims {
			for _, v := range d.values {
				decode(v.es)
			}
		}
	}
	t.merge(t.all, snap.es)
	for _, sd := range snap.dims {
		i := slices.IndexFunc(t.dims, func(d *dimension) bool { return d.name == sd.name })
		if i < 0 {
			continue // a dimension this tracker does not count by
		}
		for _, v := range sd.values {
			t.merge(t.dims[i].load(v.name), v.es)
		}
	}
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

// merge adds entries to st, later time winning, as Seen would: each takes
// its shard's lock alone, for one entry.
func (t *Tracker) merge(st *set, es []entry) {
	now := t.nowSec()
	cutoff := t.cutoff(now)
	earliest := uint32(math.MaxUint32)
	for _, e := range es {
		if s32 := toSec(min(int64(e.sec), now)); s32 >= cutoff {
			st.record(e.hash, s32, cutoff)
			earliest = min(earliest, s32)
		}
	}
	t.stored(earliest)
}
