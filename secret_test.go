package activeusers

import (
	"bytes"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPseudonymsArePermutations(t *testing.T) {
	p := newPseudonyms([]byte("sixteen byte key"))
	q := newPseudonyms([]byte("sixteen byte kez"))
	buf := new([16]byte)
	seen := map[uint64]bool{}
	rng := rand.New(rand.NewPCG(1, 2))
	same := 0
	for i := range 200_000 {
		x := rng.Uint64()
		if i < 3 {
			x = uint64(i) // 0, 1, 2: the edges
		}
		y := p.encode(x, buf)
		require.Equal(t, x, p.decode(y, buf), "decode inverts encode")
		require.False(t, seen[y], "no two values share a pseudonym")
		seen[y] = true
		if q.encode(x, buf) == y {
			same++
		}
	}
	assert.Zero(t, same, "another key gives other pseudonyms")
	assert.NotEqual(t, p.check, q.check)
}

// TestSecretKeysWhatLeaves: with WithSecret, entries and snapshots carry
// pseudonyms that another tracker under the same secret shares and no one can
// compute from the id alone; counting is unchanged.
func TestSecretKeysWhatLeaves(t *testing.T) {
	now := t0
	secret := []byte("correct horse battery staple")
	a, b := New(fixed(&now), WithSecret(secret)), New(fixed(&now), WithSecret(secret))
	other, plain := New(fixed(&now), WithSecret([]byte("another secret of 16+ bytes"))), New(fixed(&now))
	for _, tr := range []*Tracker{a, b, other, plain} {
		tr.Seen("alice@example.com")
	}
	hash := func(tr *Tracker) uint64 { return tr.AppendEntries(nil, now)[0].Hash }
	assert.Equal(t, xxhash.Sum64String("alice@example.com"), hash(plain))
	assert.NotEqual(t, hash(plain), hash(a), "keyed: not the xxhash a candidate list would give")
	assert.Equal(t, hash(a), hash(b), "the same secret, the same pseudonym")
	assert.NotEqual(t, hash(a), hash(other))
	assert.Equal(t, a.SecretCheck(), b.SecretCheck())
	assert.NotEqual(t, a.SecretCheck(), other.SecretCheck())
	assert.Empty(t, plain.SecretCheck())

	for i := range 1000 {
		a.SeenAt("u"+strconv.Itoa(i), now.Add(-time.Duration(i)*time.Minute))
	}
	var snap bytes.Buffer
	_, err := a.WriteTo(&snap)
	require.NoError(t, err)
	assert.NotContains(t, snap.String(), string(beBytes(xxhash.Sum64String("alice@example.com"))), "no plain hash in the file")

	windows := []time.Duration{time.Hour, 24 * time.Hour}
	loaded := New(fixed(&now), WithSecret(secret))
	_, err = loaded.ReadFrom(bytes.NewReader(snap.Bytes()))
	require.NoError(t, err)
	assert.Equal(t, a.Counts(windows...), loaded.Counts(windows...), "read back under the same secret")
	loaded.Seen("alice@example.com")
	assert.Equal(t, a.Counts(windows...), loaded.Counts(windows...), "the same accounts, not copies")

	for _, tr := range []*Tracker{other, plain} {
		before := tr.Counts(windows...)
		_, err := tr.ReadFrom(bytes.NewReader(snap.Bytes()))
		require.ErrorIs(t, err, ErrBadSnapshot)
		assert.Equal(t, before, tr.Counts(windows...), "refused whole")
	}
	// A plain snapshot loads into a keyed tracker: inside, hashes are plain.
	var plainSnap bytes.Buffer
	_, err = plain.WriteTo(&plainSnap)
	require.NoError(t, err)
	_, err = loaded.ReadFrom(&plainSnap)
	require.NoError(t, err)
	assert.Equal(t, a.Counts(windows...), loaded.Counts(windows...), "alice is one account either way")

	assert.PanicsWithValue(t, "activeusers.New: WithSecret: the secret is 5 bytes, it must be at least 16", func() { New(WithSecret([]byte("short"))) })
}

func beBytes(h uint64) []byte {
	b := make([]byte, 8)
	for i := range b {
		b[i] = byte(h >> (56 - 8*i))
	}
	return b
}

// TestPseudonymZeroRoundTrips: the one plain hash whose pseudonym is 0 (a
// plain hash is never 0, a pseudonym may be) survives a snapshot.
func TestPseudonymZeroRoundTrips(t *testing.T) {
	now := t0
	secret := WithSecret([]byte("sixteen byte key"))
	a := New(fixed(&now), secret)
	h := a.pn.decode(0, new([16]byte))
	a.seen(h, now.Unix())
	a.Seen("another")
	var snap bytes.Buffer
	_, err := a.WriteTo(&snap)
	require.NoError(t, err)
	b := New(fixed(&now), secret)
	_, err = b.ReadFrom(&snap)
	require.NoError(t, err)
	assert.Equal(t, []int{2}, b.Counts(time.Hour))
	got := map[uint64]bool{}
	for _, e := range b.AppendEntries(nil, time.Time{}) {
		got[e.Hash] = true
	}
	assert.True(t, got[0], "the pseudonym 0 came back")
}
