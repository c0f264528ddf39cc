package auredis

import (
	"math/bits"
	"strconv"
)

// slots is the number of hash slots in a Redis Cluster; a key's slot is the
// CRC16 of its hash tag modulo this.
const slots = 16384

// MaxKeys bounds WithKeys. Each key gets its own hash tag, found by trying
// suffixes until one lands in the key's share of the slots: about K tries a
// key, so K² CRCs in all at New — under a millisecond at this bound.
const MaxKeys = 256

// keyNames returns k sorted-set keys for base whose hash tags fall in k
// equal, consecutive ranges of the slot space, key j in the j-th. A cluster
// made by redis-cli --cluster create gives each master one consecutive range
// of slots of equal size, so with k a multiple of the masters every master
// holds the same number of keys, and with k at least the masters each holds
// a share. The names depend only on base and k, so every instance derives the
// same ones.
func keyNames(base string, k int) []string {
	keys := make([]string, k)
	for j := range keys {
		lo, hi := j*slots/k, (j+1)*slots/k
		for n := 0; ; n++ {
			tag := base + ":" + strconv.Itoa(j) + "." + strconv.Itoa(n)
			if s := int(crc16(tag)) % slots; s >= lo && s < hi {
				keys[j] = "{" + tag + "}"
				break
			}
		}
	}
	return keys
}

// keyOf is the key an account's hash belongs to: the hash's high bits scaled
// to [0, k), so each key holds a uniform share and each account exactly one.
func keyOf(hash uint64, k int) int {
	hi, _ := bits.Mul64(hash, uint64(k))
	return int(hi)
}

// crc16 is CRC-16/XMODEM (polynomial 0x1021, initial 0), the function Redis
// Cluster maps hash tags to slots with.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}
