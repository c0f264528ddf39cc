//go:build !race

package table

// raceEnabled says whether the race detector is on (see plainStores).
const raceEnabled = false
