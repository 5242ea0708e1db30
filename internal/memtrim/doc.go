// Package memtrim keeps a small daemon's resident set to what it uses.
//
// A Go binary's code and read-only data are mapped from the executable file.
// Every page the process touches once, at start-up (package initializers,
// flag and config parsing, opening files, the first connection), stays
// mapped and is counted in its RSS for the life of the process, and the
// kernel maps 64 KiB around each page touched (fault-around), so a 13 MB
// binary is mostly resident after start-up even if its steady work uses a
// fraction of it.
//
// ReleaseBinary drops this process's mappings of those pages
// (madvise MADV_DONTNEED on the executable's read-only, never-written
// segments). Nothing changes for the program: a page used again is mapped
// again from the page cache on its next use (a minor fault), or read back
// from the file if the kernel had dropped it. The pages stay in the page
// cache, shared and reclaimable, until the kernel needs the memory; what
// drops is the process's RSS, to the working set of its steady work.
//
// Segments that hold private copies (a page written by a debugger or a
// dynamic loader's relocations) are left alone: MADV_DONTNEED would throw
// those copies away.
//
// SetGCPercentDefault and SetMaxProcsDefault set the runtime's GC target and
// processor count for a small daemon, unless the environment (GOGC,
// GOMAXPROCS) says otherwise.
//
// On systems other than Linux ReleaseBinary does nothing.
package memtrim
