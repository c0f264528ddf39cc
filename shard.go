package activeusers

import (
	"sync"
	"unsafe"

	"github.com/activeusers/activeusers/internal/table"
)

// shard is one lock and the table it guards.
type shard struct {
	mu  sync.Mutex
	tab table.Table
}

// paddedShard keeps each shard's lock on cache lines of its own: without the
// padding, goroutines locking neighbouring shards would invalidate each other's
// cache line (false sharing) and the shards would contend as if they were one.
// 128 bytes rather than 64 because x86 prefetches cache lines in adjacent pairs.
type paddedShard struct {
	shard
	_ [128 - unsafe.Sizeof(shard{})%128]byte
}

// paddedShardSize is a shard's footprint, for Stats.
const paddedShardSize = int(unsafe.Sizeof(paddedShard{}))
