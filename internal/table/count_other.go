//go:build !amd64 || purego

package table

import "sync/atomic"

// countFast has no vector form here: countRun counts every slot.
func countFast(s []atomic.Uint32, cutoff uint32, th *[4]uint64, c *[4]int) int { return 0 }
