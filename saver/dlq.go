package saver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
)

type dlqItem struct {
	rec    *record
	reason string
}

// deadLetters produces records the saver cannot store to the dead-letter
// topic, with the reason in a header, and acks each only once Kafka acked
// it (acks=all). It retries forever with back-off: a record is never
// dropped, its offset just stays uncommitted.
type deadLetters struct {
	topic    string
	producer sarama.SyncProducer
	m        *metrics
	logger   *slog.Logger
	retry    func(ctx context.Context, attempt int) bool
	in       chan dlqItem

	mu           sync.Mutex
	failingSince time.Time
	lastErr      error
}

func (d *deadLetters) setFailing(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.failingSince.IsZero() {
		d.failingSince = time.Now()
	}
	d.lastErr = err
	d.m.dlqUp.Set(0)
}

func (d *deadLetters) setOK() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.failingSince, d.lastErr = time.Time{}, nil
	d.m.dlqUp.Set(1)
}

// health is an error while dead-letter produces have failed for longer
// than grace: the partitions with a dead letter cannot commit past it.
func (d *deadLetters) health(grace time.Duration) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.failingSince.IsZero() && time.Since(d.failingSince) > grace {
		return fmt.Errorf("dead-letter topic %s failing for %s: %v", d.topic, time.Since(d.failingSince).Round(time.Second), d.lastErr)
	}
	return nil
}

func newDeadLetters(topic string, producer sarama.SyncProducer, m *metrics, logger *slog.Logger, retry func(context.Context, int) bool) *deadLetters {
	return &deadLetters{topic: topic, producer: producer, m: m, logger: logger, retry: retry, in: make(chan dlqItem, 1024)}
}

// trySend queues rec for the dead-letter topic. It blocks while the queue is
// full, which slows the caller (dead letters are rare), and gives up when ctx
// ends.
func (d *deadLetters) trySend(ctx context.Context, rec *record, reason string) bool {
	select {
	case d.in <- dlqItem{rec: rec, reason: reason}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (d *deadLetters) run(ctx context.Context) {
	for {
		var items []dlqItem
		select {
		case it := <-d.in:
			items = append(items, it)
		case <-ctx.Done():
			return
		}
		for more := true; more && len(items) < 500; {
			select {
			case it := <-d.in:
				items = append(items, it)
			default:
				more = false
			}
		}
		if !d.produce(ctx, items) {
			return
		}
	}
}

func (d *deadLetters) produce(ctx context.Context, items []dlqItem) bool {
	msgs := make([]*sarama.ProducerMessage, len(items))
	for i, it := range items {
		msgs[i] = &sarama.ProducerMessage{
			Topic: d.topic,
			Value: sarama.ByteEncoder(it.rec.value),
			Headers: []sarama.RecordHeader{
				{Key: []byte(HeaderReason), Value: []byte(it.reason)},
				{Key: []byte(HeaderSource), Value: []byte(it.rec.source)},
			},
		}
		if it.rec.key != nil {
			msgs[i].Key = sarama.ByteEncoder(it.rec.key)
		}
	}
	for attempt := 0; ; attempt++ {
		if attempt > 0 && !d.retry(ctx, attempt) {
			return false
		}
		err := d.producer.SendMessages(msgs)
		if err == nil {
			d.setOK()
			break
		}
		d.setFailing(err)
		var perrs sarama.ProducerErrors
		if errors.As(err, &perrs) && len(perrs) < len(msgs) {
			// Resend only the failed ones; the others are in Kafka.
			failed := make(map[*sarama.ProducerMessage]bool, len(perrs))
			for _, pe := range perrs {
				failed[pe.Msg] = true
			}
			var keepItems []dlqItem
			var keepMsgs []*sarama.ProducerMessage
			for i, m := range msgs {
				if failed[m] {
					keepItems, keepMsgs = append(keepItems, items[i]), append(keepMsgs, m)
				} else {
					d.done(items[i])
				}
			}
			items, msgs = keepItems, keepMsgs
		}
		d.logger.Warn("dead-letter produce failed, retrying", "topic", d.topic, "records", len(msgs), "err", err)
	}
	for _, it := range items {
		d.done(it)
	}
	return true
}

func (d *deadLetters) done(it dlqItem) {
	word, _, _ := strings.Cut(it.reason, ":")
	d.m.deadLetters.WithLabelValues(word).Inc()
	d.logger.Debug("dead-lettered", "source", it.rec.source, "reason", it.reason)
	it.rec.ack.done()
}

// retrySleeper returns a back-off sleeper for the given bounds.
func retrySleeper(initial, maxD time.Duration) func(ctx context.Context, attempt int) bool {
	return func(ctx context.Context, attempt int) bool {
		t := time.NewTimer(backoff(initial, maxD, attempt))
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-ctx.Done():
			return false
		}
	}
}
