package activeusers

import (
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/stretchr/testify/assert"
)

func TestAppendEntriesSince(t *testing.T) {
	now := t0
	tr := New(fixed(&now), WithShards(4))
	for i := range 100 {
		tr.SeenAt("u"+strconv.Itoa(i), now.Add(-time.Duration(i)*time.Second))
	}
	all := tr.AppendEntries(nil, time.Time{})
	assert.Len(t, all, 100)
	recent := tr.AppendEntries(make([]Entry, 0, 3), now.Add(-9*time.Second))
	assert.Len(t, recent, 10, "seen at or after since")
	slices.SortFunc(recent, func(a, b Entry) int { return int(b.Last - a.Last) })
	assert.Equal(t, Entry{Hash: xxhash.Sum64String("u0"), Last: now.Unix()}, recent[0], "the plain xxhash and the Unix second")
	assert.Equal(t, now.Add(-9*time.Second).Unix(), recent[9].Last)
	assert.True(t, now.Equal(tr.Now()), "Now is the clock's reading")
}
