package buffer

// Batch is one stored batch as the queue hands it out.
type Batch struct {
	// Seq is the batch's sequence number: unique, increasing in append order,
	// never reused within one buffer file's life.
	Seq uint64
	// Payload is the batch exactly as appended: metric.EncodeBatch's output.
	// The sender puts it on the wire as it is.
	Payload []byte
	// Metrics is the number of metrics in Payload.
	Metrics int
}
