package buffer

import "syscall"

func madviseDontNeed(addr, length uintptr) {
	if addr == 0 || length == 0 {
		return
	}
	_, _, _ = syscall.Syscall(syscall.SYS_MADVISE, addr, length, syscall.MADV_DONTNEED)
}
