//go:build !linux

package buffer

func madviseDontNeed(addr, length uintptr) {}
