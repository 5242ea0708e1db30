package buffer

import bolt "go.etcd.io/bbolt"

func (q *Queue) maybeCompact() {}

// dropPageCache tells the kernel this process no longer needs the file pages
// it has touched through bbolt's mmap (bbolt's freelist rebuild at open,
// drained batches): they stay in the page cache but stop counting in our RSS,
// which stays flat however large the backlog.
func dropPageCache(db *bolt.DB) {
	_ = db.View(func(tx *bolt.Tx) error {
		dropMapped(tx)
		return nil
	})
}

// dropMapped must run inside a transaction: bbolt cannot remap meanwhile.
func dropMapped(tx *bolt.Tx) {
	madviseDontNeed(tx.DB().Info().Data, uintptr(tx.Size()))
}
