package buffer

import bolt "go.etcd.io/bbolt"

func (q *Queue) maybeCompact() {}

// dropPageCache tells the kernel this process no longer needs the pages of
// the file it has read (the open-time scan, drained batches): they stay in
// the page cache but stop counting in our RSS.
func dropPageCache(db *bolt.DB) {}
