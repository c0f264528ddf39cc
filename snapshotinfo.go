package activeusers

import (
	"encoding/hex"
	"io"
	"slices"
	"strings"
	"time"
)

// SnapshotInfo describes a snapshot without loading it into a tracker: what
// the activeusers command's inspect prints.
type SnapshotInfo struct {
	// Version is the format's: 1, or 2 with the segments of a tracker with
	// dimensions (docs/snapshot.md).
	Version int
	// Saved is when it was written, by its tracker's clock.
	Saved time.Time
	// Accounts is how many accounts it holds.
	Accounts int
	// SecretCheck identifies the secret its hashes are pseudonyms under (as
	// Tracker.SecretCheck does), "" if they are plain hashes.
	SecretCheck string
	// Counts has, for each window asked for, the accounts active within it
	// as of the instant asked about.
	Counts []int
	// Dimensions has each dimension's values and their counts, as CountsBy
	// gives them (Folded is 0: a snapshot does not keep it).
	Dimensions []DimensionCounts
}

// InspectSnapshot reads one whole snapshot from r, as ReadFrom would, and
// describes it: its header, and for each window the accounts (and each
// segment's accounts) active within it as of at — of the snapshot's own
// time if at is zero. It needs no tracker, and so no secret. A snapshot
// that ReadFrom would refuse is refused with the same error.
func InspectSnapshot(r io.Reader, at time.Time, windows ...time.Duration) (SnapshotInfo, error) {
	snap, _, err := decodeSnapshot(r, sizeOf(r))
	if err != nil {
		return SnapshotInfo{}, err
	}
	info := SnapshotInfo{Version: 1, Saved: time.Unix(snap.now, 0), Accounts: len(snap.es)}
	if snap.v2 {
		info.Version = 2
	}
	if snap.keyed {
		info.SecretCheck = hex.EncodeToString(snap.check[:])
	}
	ref := snap.now
	if !at.IsZero() {
		ref = at.Unix()
	}
	count := func(es []entry) []int {
		counts := make([]int, len(windows))
		for _, e := range es {
			age := max(ref-int64(e.sec), 0)
			for i, w := range windows {
				if w >= 0 && age <= int64(w/time.Second) {
					counts[i]++
				}
			}
		}
		return counts
	}
	info.Counts = count(snap.es)
	for _, d := range snap.dims {
		dc := DimensionCounts{Name: d.name}
		for _, v := range d.values {
			dc.Values = append(dc.Values, ValueCounts{Value: v.name, Counts: count(v.es)})
		}
		// Sorted by value, OverflowValue last, as CountsBy gives them.
		slices.SortFunc(dc.Values, func(a, b ValueCounts) int {
			switch {
			case a.Value == b.Value:
				return 0
			case a.Value == OverflowValue:
				return 1
			case b.Value == OverflowValue:
				return -1
			}
			return strings.Compare(a.Value, b.Value)
		})
		info.Dimensions = append(info.Dimensions, dc)
	}
	return info, nil
}
