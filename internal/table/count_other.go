//go:build !amd64 || purego

package table

import "sync/atomic"

// vectorCount says that countFast counts nothing here.
const vectorCount = false

// countFast has no vector form here: countRun counts every slot.
func countFast(s []atomic.Uint32, cutoff uint32, th *[4]uint64, c *[4]int) int { return 0 }
