//go:build race

package main

// raceEnabled: the program fills trackers with a million accounts per
// measurement; under the race detector that takes minutes and checks nothing
// the library's own -race tests do not. .ci/run runs TestProgramRunsEndToEnd without it.
const raceEnabled = true
