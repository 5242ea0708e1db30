package buffer

import (
	"errors"
	"log/slog"

	bolt "go.etcd.io/bbolt"
)

// SalvageResult reports what salvage recovered.
type SalvageResult struct {
	MovedTo string
	Batches int
	Metrics int64
}

func salvageFile(path string, opts *bolt.Options, logger *slog.Logger) (SalvageResult, error) {
	return SalvageResult{}, errors.New("not implemented")
}
