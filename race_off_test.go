//go:build !race

package activeusers

const raceEnabled = false
