//go:build activeusers_nolinkname

package activeusers

import "runtime"

// The plain-mutex build (see pin.go): nothing is pinned, so a goroutine
// that waits for another may be waiting for one the scheduler descheduled.

func procPin() int { return 0 }

func procUnpin() {}

// waitPinned yields: the goroutine waited for may need this one's P.
func waitPinned() { runtime.Gosched() }
