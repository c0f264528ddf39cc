package activeusers

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
)

// MinSecretLen is the shortest secret WithSecret accepts: 128 bits.
const MinSecretLen = 16

// pseudonyms maps the 64-bit hashes a tracker holds to the keyed values that
// leave it (AppendEntries, snapshots; through them Redis) and back.
//
// The map is a balanced Feistel network on the two 32-bit halves, the
// construction of NIST SP 800-38G's FF1 for format-preserving encryption: each
// round XORs into one half the first 4 bytes of AES-128, under the key, of the
// round number and the other half. It is a keyed permutation of 64-bit values
// — so a snapshot written under the secret reads back — and, with AES a
// pseudo-random function, a pseudo-random one: without the key, its value for
// a candidate id cannot be computed, and values reveal nothing of the ids.
// Ten rounds, as FF1 uses, keep it well clear of the attacks known on
// Feistel networks with few rounds.
type pseudonyms struct {
	blk   cipher.Block
	check [7]byte // identifies the key without revealing it, for snapshots
}

const feistelRounds = 10

func newPseudonyms(secret []byte) *pseudonyms {
	// A fixed label separates this use of the secret from any other the
	// application makes of it.
	k := sha256.Sum256(append([]byte("activeusers pseudonym key v1\x00"), secret...))
	blk, err := aes.NewCipher(k[:16])
	if err != nil {
		panic(err) // a 16-byte key is always valid
	}
	p := &pseudonyms{blk: blk}
	var b [16]byte
	copy(b[:], "activeusers key")
	b[15] = 0xff // no Feistel round input has this byte set
	blk.Encrypt(b[:], b[:])
	copy(p.check[:], b[:])
	return p
}

// round is F_i(x): the first 4 bytes of AES(i ‖ x ‖ 0…). buf is scratch.
func (p *pseudonyms) round(i int, x uint32, buf *[16]byte) uint32 {
	*buf = [16]byte{}
	buf[0] = byte(i)
	binary.LittleEndian.PutUint32(buf[1:], x)
	p.blk.Encrypt(buf[:], buf[:])
	return binary.LittleEndian.Uint32(buf[:])
}

// encode is the pseudonym of h.
func (p *pseudonyms) encode(h uint64, buf *[16]byte) uint64 {
	l, r := uint32(h>>32), uint32(h)
	for i := range feistelRounds {
		l, r = r, l^p.round(i, r, buf)
	}
	return uint64(l)<<32 | uint64(r)
}

// decode is encode's inverse.
func (p *pseudonyms) decode(h uint64, buf *[16]byte) uint64 {
	l, r := uint32(h>>32), uint32(h)
	for i := feistelRounds - 1; i >= 0; i-- {
		l, r = r^p.round(i, l, buf), l
	}
	return uint64(l)<<32 | uint64(r)
}

// SecretCheck returns a short value that identifies the tracker's secret
// (WithSecret) without revealing it — two trackers have the same one exactly
// when their secrets are the same — or "" if it has none. The auredis package
// stores it so that instances under different secrets refuse to share keys.
func (t *Tracker) SecretCheck() string {
	if t.pn == nil {
		return ""
	}
	return hex.EncodeToString(t.pn.check[:])
}
