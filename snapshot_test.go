package activeusers

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// snapshotOf fills a tracker on a fake clock and returns it with its snapshot.
func snapshotOf(t *testing.T, now *time.Time, n int) (*Tracker, []byte) {
	t.Helper()
	tr := New(fixed(now), WithRetention(48*time.Hour), WithShards(4))
	for i := range n {
		tr.SeenAt("user"+strconv.Itoa(i), now.Add(-time.Duration(i)*time.Minute))
	}
	var buf bytes.Buffer
	n64, err := tr.WriteTo(&buf)
	require.NoError(t, err)
	require.Equal(t, int64(buf.Len()), n64)
	return tr, buf.Bytes()
}

var snapWindows = []time.Duration{0, time.Minute, time.Hour, 24 * time.Hour, 48 * time.Hour}

func TestSnapshotRoundTrip(t *testing.T) {
	now := t0
	src, b := snapshotOf(t, &now, 5000) // ages 0 to ~3.5 days: some past retention
	dst := New(fixed(&now), WithRetention(48*time.Hour))
	n, err := dst.ReadFrom(bytes.NewReader(b))
	require.NoError(t, err)
	assert.Equal(t, int64(len(b)), n)
	want := src.Counts(snapWindows...)
	assert.Equal(t, want, dst.Counts(snapWindows...))
	assert.Equal(t, 48*60+1, want[4], "ages 0..48h inclusive, whole minutes")

	// Loading again changes nothing: the later time wins, and it is the same.
	_, err = dst.ReadFrom(bytes.NewReader(b))
	require.NoError(t, err)
	assert.Equal(t, want, dst.Counts(snapWindows...))
	assert.Equal(t, src.Len(), dst.Len())
}

func TestSnapshotMergeIsUnion(t *testing.T) {
	now := t0
	a := New(fixed(&now))
	b := New(fixed(&now))
	both := New(fixed(&now))
	m := newModel(DefaultRetention, &now)
	for i := range 3000 {
		at := now.Add(-time.Duration(i%500) * time.Minute)
		uid := "u" + strconv.Itoa(i%1200)
		if i%2 == 0 {
			a.SeenAt(uid, at)
		} else {
			b.SeenAt(uid, at)
		}
		m.seenAt(uid, at)
	}
	for _, tr := range []*Tracker{a, b} {
		var buf bytes.Buffer
		_, err := tr.WriteTo(&buf)
		require.NoError(t, err)
		_, err = both.ReadFrom(&buf)
		require.NoError(t, err)
	}
	assert.Equal(t, m.countsAt(now, snapWindows...), both.Counts(snapWindows...))
}

func TestSnapshotClampsAndSkips(t *testing.T) {
	now := t0
	src := New(fixed(&now), WithRetention(time.Hour))
	src.Seen("a")
	src.SeenAt("future", now.Add(time.Hour))
	var buf bytes.Buffer
	_, err := src.WriteTo(&buf)
	require.NoError(t, err)

	// Loaded two hours later by a tracker with the same retention: "a" is past
	// it and skipped; "future" was clamped to the snapshot's time when written.
	later := now.Add(2 * time.Hour)
	dst := New(fixed(&later), WithRetention(time.Hour))
	_, err = dst.ReadFrom(bytes.NewReader(buf.Bytes()))
	require.NoError(t, err)
	assert.Equal(t, 0, dst.Len())

	// Loaded by a tracker whose clock is behind the snapshot's: times from
	// its future are clamped to its now.
	earlier := now.Add(-10 * time.Minute)
	dst = New(fixed(&earlier), WithRetention(time.Hour))
	_, err = dst.ReadFrom(bytes.NewReader(buf.Bytes()))
	require.NoError(t, err)
	assert.Equal(t, []int{2}, dst.Counts(0))
	earlier = earlier.Add(time.Minute)
	assert.Equal(t, []int{0, 2}, dst.Counts(59*time.Second, time.Minute), "both stored at the loader's now, not later")
}

// TestSnapshotOfAWeekStaysSmall: ages spread over a whole week (the worst
// case for their varints), at 200k users.
func TestSnapshotOfAWeekStaysSmall(t *testing.T) {
	now := t0
	tr := New(fixed(&now))
	n := 200_000
	if raceEnabled {
		n = 50_000
	}
	r := rand.New(rand.NewPCG(5, 6))
	for i := range n {
		tr.SeenAt("user"+strconv.Itoa(i), now.Add(-time.Duration(r.IntN(7*24*3600))*time.Second))
	}
	var buf bytes.Buffer
	_, err := tr.WriteTo(&buf)
	require.NoError(t, err)
	per := float64(buf.Len()) / float64(n)
	t.Logf("%.2f bytes per user", per)
	assert.LessOrEqual(t, per, 10.0)
}

// TestSnapshotBadInput: every kind of broken input is refused with an error that
// says which, and the tracker is exactly as it was.
func TestSnapshotBadInput(t *testing.T) {
	now := t0
	_, good := snapshotOf(t, &now, 300)
	resum := func(b []byte) []byte {
		binary.LittleEndian.PutUint32(b[len(b)-4:], crc32.Checksum(b[:len(b)-4], castagnoli))
		return b
	}
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	cases := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "wrong magic"},
		{"magic", mod(func(b []byte) []byte { b[0] = 'X'; return b }), "wrong magic"},
		{"text", []byte("{\"users\": 3}"), "wrong magic"},
		{"header cut", good[:20], "shorter than the header"},
		{"version", mod(func(b []byte) []byte { b[8] = 9; return resum(b) }), "unsupported version 9"},
		{"truncated", good[:len(good)-30], "truncated: the input ends in entry"},
		{"checksum cut", good[:len(good)-2], "truncated: the input ends in the checksum"},
		{"trailing bytes", append(bytes.Clone(good), 0), "bytes after the last entry"},
		{"two snapshots", append(bytes.Clone(good), good...), "bytes after the last entry"},
		{"bit flip", mod(func(b []byte) []byte { b[100] ^= 4; return b }), "checksum mismatch"},
		{"hash", mod(func(b []byte) []byte { b[10] = 3; return resum(b) }), "unknown hash function 3"},
		{"keyed, no secret", mod(func(b []byte) []byte { b[10] = 2; return resum(b) }), "written under a secret (WithSecret), and this tracker has none"},
		{"resolution", mod(func(b []byte) []byte { b[12] = 60; return resum(b) }), "resolution of 60 seconds"},
		{"oversized", mod(func(b []byte) []byte { binary.LittleEndian.PutUint64(b[24:], 1<<40); return resum(b) }), "oversized"},
		{"count too big for bytes", mod(func(b []byte) []byte { binary.LittleEndian.PutUint64(b[24:], 1<<20); return resum(b) }), "entries declared in"},
		{"count too small", mod(func(b []byte) []byte { binary.LittleEndian.PutUint64(b[24:], 299); return resum(b) }), "checksum mismatch"},
		{"low bytes", mod(func(b []byte) []byte { b[32] = 9; return resum(b) }), "raw gap bytes"},
		{"time", mod(func(b []byte) []byte { binary.LittleEndian.PutUint64(b[16:], 1<<63); return resum(b) }), "outside 1970–2106"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := New(fixed(&now))
			tr.Seen("keep")
			before := tr.Counts(snapWindows...)
			// A reader that cannot tell its size, and hands out one byte at a
			// time, must be refused the same way as one that can.
			_, err := tr.ReadFrom(iotest.OneByteReader(bytes.NewReader(c.in)))
			require.Error(t, err)
			assert.True(t, errors.Is(err, ErrBadSnapshot), "%v wraps ErrBadSnapshot", err)
			if c.name != "count too big for bytes" { // refused early only when the size is known
				assert.Contains(t, err.Error(), c.want)
			}
			_, err = tr.ReadFrom(bytes.NewReader(c.in))
			require.Error(t, err)
			assert.True(t, errors.Is(err, ErrBadSnapshot), "%v wraps ErrBadSnapshot", err)
			assert.Contains(t, err.Error(), c.want)
			assert.Equal(t, before, tr.Counts(snapWindows...), "the tracker is as it was")
			assert.Equal(t, 1, tr.Len())
		})
	}
}

// TestSnapshotDecodesFromAnyReader: a valid snapshot read in pieces of any
// size decodes the same, and a reader's own error is returned as it is, not
// as a bad snapshot.
func TestSnapshotDecodesFromAnyReader(t *testing.T) {
	now := t0
	src, b := snapshotOf(t, &now, 20000) // several read buffers' worth
	for name, r := range map[string]io.Reader{
		"one byte at a time": iotest.OneByteReader(bytes.NewReader(b)),
		"half reads":         iotest.HalfReader(bytes.NewReader(b)),
		"data with EOF":      iotest.DataErrReader(bytes.NewReader(b)),
	} {
		dst := New(fixed(&now), WithRetention(48*time.Hour))
		n, err := dst.ReadFrom(r)
		require.NoError(t, err, name)
		assert.Equal(t, int64(len(b)), n, name)
		assert.Equal(t, src.Counts(snapWindows...), dst.Counts(snapWindows...), name)
	}
	// A reader may return nothing, and no error, now and then; one that
	// never yields is refused.
	dst := New(fixed(&now), WithRetention(48*time.Hour))
	_, err := dst.ReadFrom(&stutterReader{r: bytes.NewReader(b)})
	require.NoError(t, err, "occasional empty reads")
	assert.Equal(t, src.Counts(snapWindows...), dst.Counts(snapWindows...))
	_, err = New(fixed(&now)).ReadFrom(&stutterReader{r: bytes.NewReader(b), stuck: true})
	require.ErrorIs(t, err, io.ErrNoProgress)

	boom := errors.New("disk on fire")
	for _, cut := range []int{0, 5, 100, len(b) - 1} {
		tr := New(fixed(&now))
		_, err := tr.ReadFrom(io.MultiReader(bytes.NewReader(b[:cut]), iotest.ErrReader(boom)))
		require.ErrorIs(t, err, boom, "cut at %d", cut)
		assert.NotErrorIs(t, err, ErrBadSnapshot)
		assert.Zero(t, tr.Len())
	}
}

// stutterReader returns nothing, and no error, on every other read; stuck, on
// every read after the first.
type stutterReader struct {
	r     io.Reader
	n     int
	stuck bool
}

func (s *stutterReader) Read(p []byte) (int, error) {
	s.n++
	if s.n%2 == 0 || (s.stuck && s.n > 1) {
		return 0, nil
	}
	return s.r.Read(p[:min(len(p), 1000)])
}

// TestHugeFileRefusedCheaply: a 2 GiB sparse file of zeros is not a snapshot,
// and one whose header is valid but whose entries are zeros is not either;
// both are refused by their first bytes, with a few MiB allocated at most.
func TestHugeFileRefusedCheaply(t *testing.T) {
	now := t0
	_, good := snapshotOf(t, &now, 10)
	for name, head := range map[string][]byte{
		"zeros":              nil,
		"valid header, 2^32": withCount(good, 1<<32), // more than 2 GiB can hold
		"valid header, 2^26": withCount(good, 1<<26), // fits: the zero entries give it away
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "huge.snap")
			f, err := os.Create(path)
			require.NoError(t, err)
			_, err = f.Write(head)
			require.NoError(t, err)
			require.NoError(t, f.Truncate(2<<30)) // sparse: no disk used
			require.NoError(t, f.Close())

			tr := New(fixed(&now))
			tr.Seen("keep")
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			err = tr.LoadFile(path)
			took := time.Since(start)
			runtime.ReadMemStats(&after)
			require.ErrorIs(t, err, ErrBadSnapshot)
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("refused in %v with %d KiB allocated: %v", took, alloc>>10, err)
			assert.Less(t, alloc, uint64(4<<20), "bytes allocated to refuse it")
			assert.Equal(t, 1, tr.Len())
		})
	}
}

// withCount is a snapshot's header declaring count entries.
func withCount(snap []byte, count uint64) []byte {
	h := bytes.Clone(snap[:snapHeader])
	binary.LittleEndian.PutUint64(h[24:], count)
	return h
}

func TestSaveFileReplacesAtomicallyAndLoadFileRestores(t *testing.T) {
	now := t0
	dir := t.TempDir()
	path := filepath.Join(dir, "active.snap")

	tr := New(fixed(&now))
	require.NoError(t, tr.LoadFile(path), "a missing file is not an error")
	for i := range 1000 {
		tr.Seen("u" + strconv.Itoa(i))
	}
	require.NoError(t, tr.SaveFile(path))
	tr.Seen("one more")
	require.NoError(t, tr.SaveFile(path), "saving over the old snapshot")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no temporary file left behind")

	back := New(fixed(&now))
	require.NoError(t, back.LoadFile(path))
	assert.Equal(t, []int{1001}, back.Counts(time.Hour))

	// A corrupt file: an error naming it, and nothing loaded.
	require.NoError(t, os.WriteFile(path, []byte("AUSNAP\r\n garbage"), 0o644))
	fresh := New(fixed(&now))
	err = fresh.LoadFile(path)
	require.ErrorIs(t, err, ErrBadSnapshot)
	assert.Contains(t, err.Error(), path)
	assert.Equal(t, 0, fresh.Len())

	// A folder that does not exist: SaveFile fails and says so.
	err = tr.SaveFile(filepath.Join(dir, "nope", "x.snap"))
	require.Error(t, err)
}

func TestPersistSavesPeriodicallyAndOnClose(t *testing.T) {
	now := t0
	path := filepath.Join(t.TempDir(), "p.snap")
	tr := New(fixed(&now))
	p, err := Persist(tr, path, 10*time.Millisecond)
	require.NoError(t, err)
	tr.Seen("a")
	require.Eventually(t, func() bool {
		back := New(fixed(&now))
		return back.LoadFile(path) == nil && back.Len() == 1
	}, 5*time.Second, 5*time.Millisecond, "a periodic save happened")
	tr.Seen("b")
	require.NoError(t, p.Close(), "the final save")
	require.NoError(t, p.Close())
	require.NoError(t, p.Err())

	restarted := New(fixed(&now))
	p2, err := Persist(restarted, path, time.Hour)
	require.NoError(t, err)
	assert.Equal(t, []int{2}, restarted.Counts(time.Hour), "counts after the restart equal counts before it")
	require.NoError(t, p2.Close())

	_, err = Persist(restarted, path, 0)
	assert.ErrorContains(t, err, "interval must be positive")
	require.NoError(t, os.WriteFile(path, []byte("junk"), 0o644))
	_, err = Persist(restarted, path, time.Hour)
	assert.ErrorIs(t, err, ErrBadSnapshot, "a corrupt snapshot stops the start rather than being overwritten")
}

// TestPersistRefusesWhereItCannotSave: a folder that does not exist, or a
// "folder" that is a file, fails at start rather than in a later Err.
func TestPersistRefusesWhereItCannotSave(t *testing.T) {
	now := t0
	dir := t.TempDir()
	file := filepath.Join(dir, "plain")
	require.NoError(t, os.WriteFile(file, nil, 0o644))
	for _, path := range []string{
		filepath.Join(dir, "missing", "a.snap"),
		filepath.Join(file, "a.snap"),
	} {
		p, err := Persist(New(fixed(&now)), path, time.Hour)
		require.Error(t, err, path)
		assert.Nil(t, p)
		assert.Contains(t, err.Error(), path, "the error names the path")
	}
}

// TestPersistRemovesStaleTemps: temporary files of the same snapshot left by a
// killed process go; anything else stays.
func TestPersistRemovesStaleTemps(t *testing.T) {
	now := t0
	dir := t.TempDir()
	path := filepath.Join(dir, "a.snap")
	for _, name := range []string{"a.snap.tmp-123", "a.snap.tmp-x", "b.snap.tmp-1", "a.snap.tmpfile", "notes"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644))
	}
	p, err := Persist(New(fixed(&now)), path, time.Hour)
	require.NoError(t, err)
	require.NoError(t, p.Close())
	var names []string
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.ElementsMatch(t, []string{"a.snap", "b.snap.tmp-1", "a.snap.tmpfile", "notes"}, names)
}

func TestSaveFileMode(t *testing.T) {
	now := t0
	tr := New(fixed(&now))
	tr.Seen("a")
	dir := t.TempDir()
	fresh := filepath.Join(dir, "new.snap")
	require.NoError(t, tr.SaveFile(fresh))
	fi, err := os.Stat(fresh)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "a new snapshot is private")

	shared := filepath.Join(dir, "shared.snap")
	require.NoError(t, os.WriteFile(shared, nil, 0o644))
	require.NoError(t, os.Chmod(shared, 0o644)) // whatever the umask
	require.NoError(t, tr.SaveFile(shared))
	fi, err = os.Stat(shared)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o644), fi.Mode().Perm(), "an existing file keeps its mode")
}

// TestKilledMidSave kills (SIGKILL) a process saving a snapshot in a loop at
// random moments: the file at the path is always a whole snapshot, old or new,
// and Persist then starts cleanly and leaves no temporary file behind.
func TestKilledMidSave(t *testing.T) {
	if os.Getenv("ACTIVEUSERS_SAVE_LOOP") != "" {
		saveLoop(os.Getenv("ACTIVEUSERS_SAVE_LOOP"))
		return
	}
	if testing.Short() || raceEnabled {
		t.Skip("starts and kills processes; about files, not goroutines: ./test.sh and .ci/run run it without -race")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "killed.snap")
	r := rand.New(rand.NewPCG(7, 7))
	leftovers := 0
	for round := range 8 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKilledMidSave$", "-test.count=1")
		cmd.Env = append(os.Environ(), "ACTIVEUSERS_SAVE_LOOP="+path)
		require.NoError(t, cmd.Start())
		// Wait until the loop has saved at least once, then kill it at a
		// random point of a later save.
		require.Eventually(t, func() bool { _, err := os.Stat(path); return err == nil }, 20*time.Second, time.Millisecond)
		time.Sleep(time.Duration(r.IntN(60)) * time.Millisecond)
		require.NoError(t, cmd.Process.Kill())
		cmd.Wait()

		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		leftovers += len(entries) - 1
		now := time.Now()
		tr := New(fixed(&now))
		p, err := Persist(tr, path, time.Hour)
		require.NoError(t, err, "round %d: the file is a whole snapshot", round)
		require.NoError(t, p.Close())
		assert.Equal(t, 100_000, tr.Len(), "round %d", round)
		entries, err = os.ReadDir(dir)
		require.NoError(t, err)
		require.Len(t, entries, 1, "round %d: only the snapshot remains", round)
	}
	t.Logf("temporary files left by the kills and removed: %d in 8 rounds", leftovers)
}

// saveLoop is TestKilledMidSave's child: it saves 100,000 accounts to path
// until it is killed.
func saveLoop(path string) {
	tr := New()
	for i := range 100_000 {
		tr.Seen("user" + strconv.Itoa(i))
	}
	for {
		if err := tr.SaveFile(path); err != nil {
			panic(err)
		}
	}
}

// FuzzDecodeSnapshot: hostile bytes never panic, never allocate more than the
// input can hold, and a decoded snapshot re-encodes to the same entries.
var fuzzSecret = []byte("the fuzz target's secret")

func FuzzDecodeSnapshot(f *testing.F) {
	now := t0
	for _, n := range []int{0, 1, 7, 300} {
		tr := New(fixed(&now))
		for i := range n {
			tr.SeenAt("u"+strconv.Itoa(i), now.Add(-time.Duration(i)*time.Second))
		}
		var buf bytes.Buffer
		tr.WriteTo(&buf)
		f.Add(buf.Bytes())
		if n == 300 {
			b := buf.Bytes()
			f.Add(b[:len(b)/2])
			broken := bytes.Clone(b)
			broken[60] ^= 0xff
			f.Add(broken)
		}
	}
	for _, n := range []int{1, 300} { // keyed: under the fuzz secret and another
		for _, secret := range [][]byte{fuzzSecret, []byte("another secret, 16+ bytes")} {
			tr := New(fixed(&now), WithSecret(secret))
			for i := range n {
				tr.SeenAt("u"+strconv.Itoa(i), now.Add(-time.Duration(i)*time.Second))
			}
			var buf bytes.Buffer
			tr.WriteTo(&buf)
			f.Add(buf.Bytes())
		}
	}
	for _, secret := range [][]byte{nil, fuzzSecret} { // version 2: with segments
		f.Add(segmentedSnapshot(f, &now, 50, secret))
	}
	f.Add([]byte(snapMagic))
	f.Add([]byte("not a snapshot"))
	f.Fuzz(func(t *testing.T, b []byte) {
		snap, _, err := decodeSnapshot(bytes.NewReader(b), -1)
		if err != nil {
			require.ErrorIs(t, err, ErrBadSnapshot)
			return
		}
		total := len(snap.es)
		for _, d := range snap.dims {
			for _, v := range d.values {
				total += len(v.es)
			}
		}
		require.LessOrEqual(t, total, len(b)/2, "entries beyond what the bytes can hold")
		for i := 1; i < len(snap.es); i++ {
			require.Less(t, snap.es[i-1].hash, snap.es[i].hash)
		}
		// What decodes re-encodes to the same snapshot.
		again, _, err := decodeSnapshot(bytes.NewReader(encodeSnapshot(snap)), -1)
		require.NoError(t, err)
		require.Equal(t, snap, again)
		// Read by a tracker: a keyed snapshot loads only under its secret.
		for _, tr := range []*Tracker{
			New(fixed(&now)), New(fixed(&now), WithSecret(fuzzSecret)),
			New(fixed(&now), WithDimensions("plan", "platform"), WithMaxValues(2)),
		} {
			_, err := tr.ReadFrom(bytes.NewReader(b))
			if snap.keyed && (tr.pn == nil || tr.pn.check != snap.check) {
				require.ErrorIs(t, err, ErrBadSnapshot)
			} else {
				require.NoError(t, err)
			}
		}
	})
}

// segmentedSnapshot is a version 2 snapshot of n accounts in plans and
// platforms, some with no platform.
func segmentedSnapshot(tb testing.TB, now *time.Time, n int, secret []byte) []byte {
	opts := []Option{fixed(now), WithRetention(48 * time.Hour), WithDimensions("plan", "platform")}
	if secret != nil {
		opts = append(opts, WithSecret(secret))
	}
	tr := New(opts...)
	for i := range n {
		platform := []string{"ios", "android", "web", ""}[i%4]
		tr.SeenInAt("user"+strconv.Itoa(i), now.Add(-time.Duration(i)*time.Minute), []string{"free", "pro", "team"}[i%3], platform)
	}
	var buf bytes.Buffer
	if _, err := tr.WriteTo(&buf); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// TestSnapshotCarriesSegments: version 2 round-trips every segment's
// accounts, and merges by value name whatever order values arrived in.
func TestSnapshotCarriesSegments(t *testing.T) {
	now := t0
	b := segmentedSnapshot(t, &now, 5000, nil) // ages to ~3.5 days: some past retention
	assert.Equal(t, uint16(2), binary.LittleEndian.Uint16(b[8:]))
	src := New(fixed(&now), WithRetention(48*time.Hour), WithDimensions("plan", "platform"))
	_, err := src.ReadFrom(bytes.NewReader(b))
	require.NoError(t, err)
	want := src.CountsBy(snapWindows...)
	assert.Equal(t, 48*60+1, want.Overall[4])
	assert.Len(t, want.Dimensions[1].Values, 4, "ios, android, web and the overflow")

	// A tracker that saw values in another order, and more of them, merges by name.
	dst := New(fixed(&now), WithRetention(48*time.Hour), WithDimensions("plan", "platform"))
	dst.SeenInAt("user0", now.Add(-time.Hour), "team", "web") // older: the snapshot's time wins
	_, err = dst.ReadFrom(bytes.NewReader(b))
	require.NoError(t, err)
	got := dst.CountsBy(snapWindows...)
	assert.Equal(t, want.Overall, got.Overall)
	// user0, now on free and ios by the snapshot, was also on team and web an
	// hour ago: both gain it in the windows of an hour and more.
	hourAgo := []int{0, 0, 1, 1, 1}
	for d, gains := range map[int]string{0: "team", 1: "web"} {
		for k, v := range want.Dimensions[d].Values {
			if v.Value == gains {
				v = ValueCounts{v.Value, add(v.Counts, hourAgo)}
			}
			assert.Equal(t, v, got.Dimensions[d].Values[k])
		}
	}

	// Loaded by a tracker without dimensions, or with others: the overall
	// counts, and the dimensions it has.
	plain := New(fixed(&now), WithRetention(48*time.Hour))
	_, err = plain.ReadFrom(bytes.NewReader(b))
	require.NoError(t, err)
	assert.Equal(t, want.Overall, plain.Counts(snapWindows...))
	other := New(fixed(&now), WithRetention(48*time.Hour), WithDimensions("region", "platform"))
	_, err = other.ReadFrom(bytes.NewReader(b))
	require.NoError(t, err)
	ob := other.CountsBy(snapWindows...)
	assert.Equal(t, want.Dimensions[1].Values, ob.Dimensions[1].Values)
	assert.Equal(t, []ValueCounts{{OverflowValue, make([]int, len(snapWindows))}}, ob.Dimensions[0].Values)

	// With a smaller bound the values beyond it fold into the overflow value,
	// and Folded still counts only recordings.
	small := New(fixed(&now), WithRetention(48*time.Hour), WithDimensions("plan"), WithMaxValues(1))
	_, err = small.ReadFrom(bytes.NewReader(b))
	require.NoError(t, err)
	sb := small.CountsBy(snapWindows...)
	require.Len(t, sb.Dimensions[0].Values, 2)
	assert.Equal(t, sb.Overall, add(sb.Dimensions[0].Values[0].Counts, sb.Dimensions[0].Values[1].Counts), "each account in one plan")
	assert.Zero(t, sb.Dimensions[0].Folded)

	// Under a secret: every segment's hashes are pseudonyms too, and read back.
	keyed := segmentedSnapshot(t, &now, 5000, fuzzSecret)
	ktr := New(fixed(&now), WithRetention(48*time.Hour), WithDimensions("plan", "platform"), WithSecret(fuzzSecret))
	_, err = ktr.ReadFrom(bytes.NewReader(keyed))
	require.NoError(t, err)
	assert.Equal(t, want, ktr.CountsBy(snapWindows...))
	snap, _, err := decodeSnapshot(bytes.NewReader(keyed), -1)
	require.NoError(t, err)
	plainSnap, _, err := decodeSnapshot(bytes.NewReader(b), -1)
	require.NoError(t, err)
	assert.NotEqual(t, plainSnap.dims[0].values[0].es[0].hash, snap.dims[0].values[0].es[0].hash)
}

func add(a, b []int) []int {
	c := make([]int, len(a))
	for i := range a {
		c[i] = a[i] + b[i]
	}
	return c
}

// TestSegmentedSnapshotBadInput: every truncation of a version 2 snapshot,
// and every single-bit flip in its segments section, is refused with
// ErrBadSnapshot and changes nothing.
func TestSegmentedSnapshotBadInput(t *testing.T) {
	now := t0
	b := segmentedSnapshot(t, &now, 40, nil)
	tr := New(fixed(&now), WithRetention(48*time.Hour), WithDimensions("plan", "platform"))
	tr.SeenIn("already", "pro", "ios")
	before := tr.CountsBy(snapWindows...)
	for n := range len(b) {
		_, err := tr.ReadFrom(bytes.NewReader(b[:n]))
		require.ErrorIs(t, err, ErrBadSnapshot, "truncated to %d of %d bytes", n, len(b))
	}
	snap, _, err := decodeSnapshot(bytes.NewReader(b), -1)
	require.NoError(t, err)
	section := len(encodeSnapshot(snapshot{snapMeta: snap.snapMeta, es: snap.es})) - snapTrailer
	for i := section; i < len(b)-snapTrailer; i++ {
		for bit := range 8 {
			c := bytes.Clone(b)
			c[i] ^= 1 << bit
			_, err := tr.ReadFrom(bytes.NewReader(c))
			require.ErrorIs(t, err, ErrBadSnapshot, "bit %d of byte %d", bit, i)
		}
	}
	assert.Equal(t, before, tr.CountsBy(snapWindows...), "nothing loaded")

	// A hostile segments section: counts beyond the bounds, refused by the
	// header of the section alone.
	for name, section := range map[string][]byte{
		"dimensions": binary.AppendUvarint(nil, MaxDimensions+1),
		"values":     append(appendString(binary.AppendUvarint(nil, 1), "plan"), binary.AppendUvarint(nil, MaxValues+2)...),
		"long value": append(append(appendString(binary.AppendUvarint(nil, 1), "plan"), 1), appendString(nil, strings.Repeat("x", MaxValueLen+1))...),
		"bad name":   appendString(binary.AppendUvarint(nil, 1), "window"),
	} {
		v2 := encodeSnapshot(snapshot{snapMeta: snapMeta{now: now.Unix(), v2: true}})
		v2 = append(v2[:len(v2)-snapTrailer-1], section...) // replace "0 dimensions"
		v2 = binary.LittleEndian.AppendUint32(v2, crc32.Checksum(v2, castagnoli))
		_, err := tr.ReadFrom(bytes.NewReader(v2))
		require.ErrorIs(t, err, ErrBadSnapshot, name)
		assert.Contains(t, err.Error(), "corrupt", name)
	}
}

// TestVersion1StillLoads: a version 1 snapshot (what a tracker without
// dimensions writes, and every earlier build wrote) loads into a tracker with
// dimensions: its accounts count overall.
func TestVersion1StillLoads(t *testing.T) {
	now := t0
	_, b := snapshotOf(t, &now, 300)
	assert.Equal(t, uint16(1), binary.LittleEndian.Uint16(b[8:]))
	tr := New(fixed(&now), WithRetention(48*time.Hour), WithDimensions("plan"))
	_, err := tr.ReadFrom(bytes.NewReader(b))
	require.NoError(t, err)
	bd := tr.CountsBy(time.Hour)
	assert.Equal(t, []int{61}, bd.Overall)
	assert.Equal(t, []int{0}, bd.Dimensions[0].Values[0].Counts)
}
