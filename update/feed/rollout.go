package feed

import (
	"crypto/sha256"
	"encoding/binary"
)

// Bucket places (agent id, version) in one of 10,000 buckets, uniformly
// and deterministically. Hashing the version too means each release picks
// a different first wave, so the same hosts are not always first.
func Bucket(agentID, version string) int {
	h := sha256.New()
	h.Write([]byte(agentID))
	h.Write([]byte{0})
	h.Write([]byte(version))
	var sum [sha256.Size]byte
	return int(binary.BigEndian.Uint64(h.Sum(sum[:0])[:8]) % 10000)
}

// Eligible reports whether the agent takes version at percent (0-100):
// its bucket falls under percent. Raising the percentage keeps every agent
// already eligible and adds more.
func Eligible(agentID, version string, percent int) bool {
	return Bucket(agentID, version) < percent*100
}
