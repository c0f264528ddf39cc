//go:build !race

package table

// RaceEnabled says whether the race detector is on: Record's stores depend
// on it (see plainStores), and the tracker's tests of size scale down under
// it (every atomic is instrumented there, and they run about 10× slower).
const RaceEnabled = false
