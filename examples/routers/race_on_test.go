//go:build race

package routers

// raceEnabled: the race detector allocates and drops sync.Pool items at
// random, so allocation counts mean nothing under it.
const raceEnabled = true
