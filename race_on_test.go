//go:build race

package activeusers

// raceEnabled: under the race detector every atomic is instrumented and
// single-goroutine tests of size run ~10× slower for nothing; they scale down.
const raceEnabled = true
