//go:build !race

package activeusers

// raceEnabled says whether the race detector is on: tests of size scale
// down under it, and allocation counts are not exact (it drops sync.Pool
// items at random).
const raceEnabled = false
