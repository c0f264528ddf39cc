//go:build race

package table

// raceEnabled says whether the race detector is on: see Table.Record's
// insert, which stores a new slot with plain stores only when it is not.
const raceEnabled = true
