package relay

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
)

// producer wraps sarama's async producer and calls each batch's finish once
// Kafka answered every record of it.
type producer struct {
	client sarama.Client
	p      sarama.AsyncProducer
	topic  string
	wg     sync.WaitGroup
	srv    *Server

	lastOK  atomic.Int64 // unix nanos of the last success
	lastErr atomic.Int64 // unix nanos of the last failure
	errMsg  atomic.Pointer[string]

	closeMu sync.RWMutex // held for reading while sending to Input
	closed  bool
}

func saramaConfig(c KafkaConfig) (*sarama.Config, error) {
	sc := sarama.NewConfig()
	v, err := sarama.ParseKafkaVersion(c.Version)
	if err != nil {
		return nil, err
	}
	codec, err := CompressionCodec(c.Compression)
	if err != nil {
		return nil, err
	}
	sc.Version = v
	sc.ClientID = c.ClientID
	sc.ChannelBufferSize = 4096
	sc.Producer.RequiredAcks = sarama.WaitForAll
	sc.Producer.Return.Successes = true
	sc.Producer.Return.Errors = true
	sc.Producer.Compression = codec
	sc.Producer.Flush.Frequency = c.Linger.D()
	sc.Producer.MaxMessageBytes = int(c.MaxMessageBytes)
	sc.Producer.Retry.Max = c.RetryMax
	sc.Producer.Retry.Backoff = c.RetryBackoff.D()
	sc.Producer.Timeout = c.Timeout.D()
	sc.Producer.Idempotent = c.Idempotent
	if c.Idempotent {
		sc.Net.MaxOpenRequests = 1
		sc.Producer.Retry.Max = max(sc.Producer.Retry.Max, 1)
	}
	sc.Net.DialTimeout = min(c.Timeout.D(), 5*time.Second)
	sc.Net.ReadTimeout = c.Timeout.D() + 5*time.Second
	sc.Net.WriteTimeout = c.Timeout.D()
	sc.Metadata.Retry.Max = 2
	sc.Metadata.Retry.Backoff = 250 * time.Millisecond
	sc.Metadata.RefreshFrequency = time.Minute
	if err := applyKafkaSecurity(sc, c); err != nil {
		return nil, err
	}
	return sc, nil
}

func newProducer(srv *Server) (*producer, error) {
	c := srv.cfg.Kafka
	sc, err := saramaConfig(c)
	if err != nil {
		return nil, err
	}
	client, err := sarama.NewClient(c.Brokers, sc)
	if err != nil {
		if why := explainKafkaError(err, c, "relay.kafka"); why != "" {
			return nil, fmt.Errorf("kafka client: %s: %w", why, err)
		}
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	if err := checkTopic(client, c.Topic, srv.log); err != nil {
		_ = client.Close()
		return nil, err
	}
	p, err := sarama.NewAsyncProducerFromClient(client)
	if err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("kafka producer: %w", err)
	}
	pr := &producer{client: client, p: p, topic: c.Topic, srv: srv}
	pr.lastOK.Store(time.Now().UnixNano())
	pr.wg.Add(2)
	go pr.successes()
	go pr.errors()
	return pr, nil
}

func (pr *producer) successes() {
	defer pr.wg.Done()
	var n int
	for msg := range pr.p.Successes() {
		// The clock is read once per 64 records, and on the first success
		// after a failure: health only compares it with the last error's time.
		if n&63 == 0 || pr.lastErr.Load() >= pr.lastOK.Load() {
			pr.lastOK.Store(time.Now().UnixNano())
		}
		n++
		pr.srv.m.produced.Inc()
		if b, ok := msg.Metadata.(*pending); ok {
			b.recordDone(nil)
		}
	}
}

func (pr *producer) errors() {
	defer pr.wg.Done()
	for perr := range pr.p.Errors() {
		now := time.Now().UnixNano()
		pr.lastErr.Store(now)
		msg := perr.Err.Error()
		pr.errMsg.Store(&msg)
		pr.srv.m.produceErrors.Inc()
		pr.srv.logProduceError(perr.Err)
		if b, ok := perr.Msg.Metadata.(*pending); ok {
			b.recordDone(perr.Err)
		}
	}
}

var errProducerClosed = errors.New("relay: producer closed")

// send hands msgs to sarama, stopping early if stop closes. It returns how
// many were handed over.
func (pr *producer) send(msgs []sarama.ProducerMessage, stop <-chan struct{}) (int, error) {
	pr.closeMu.RLock()
	defer pr.closeMu.RUnlock()
	if pr.closed {
		return 0, errProducerClosed
	}
	in := pr.p.Input()
	for i := range msgs {
		// A non-blocking send first: it costs far less than a two-way
		// select, and sarama's input buffer is rarely full.
		select {
		case in <- &msgs[i]:
			continue
		default:
		}
		select {
		case in <- &msgs[i]:
		case <-stop:
			return i, errProducerClosed
		}
	}
	return len(msgs), nil
}

// health reports why produce is failing, or nil: failing means the last
// error is newer than the last success.
func (pr *producer) health() error {
	le := pr.lastErr.Load()
	if le != 0 && le > pr.lastOK.Load() {
		msg := ""
		if p := pr.errMsg.Load(); p != nil {
			msg = *p
		}
		return fmt.Errorf("kafka: produce failing: %s", msg)
	}
	return nil
}

// refresh checks the brokers when the relay is idle.
func (pr *producer) refresh() error {
	if err := pr.client.RefreshMetadata(pr.topic); err != nil {
		return err
	}
	if _, err := pr.client.Leader(pr.topic, 0); err != nil {
		return err
	}
	return nil
}

// close flushes what sarama holds (it finishes or fails every record, so
// every pending batch is finished) and closes the client.
func (pr *producer) close() {
	// No send may be blocked in Input when sarama closes it: take the lock
	// first (sarama keeps consuming Input, so blocked sends finish).
	pr.closeMu.Lock()
	pr.closed = true
	pr.closeMu.Unlock()
	pr.p.AsyncClose()
	pr.wg.Wait()
	_ = pr.client.Close()
}
