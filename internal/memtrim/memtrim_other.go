//go:build !linux

package memtrim

// ReleaseBinary does nothing outside Linux.
func ReleaseBinary() (uint64, error) { return 0, nil }
