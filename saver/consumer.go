package saver

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/IBM/sarama"
)

func parseKafkaVersion(s string) (sarama.KafkaVersion, error) {
	v, err := sarama.ParseKafkaVersion(s)
	if err != nil {
		return v, fmt.Errorf("%q: %v", s, err)
	}
	return v, nil
}

// saramaConfig is the consumer group and dead-letter producer configuration:
// manual commits only.
func saramaConfig(k *KafkaConfig) (*sarama.Config, error) {
	sc := sarama.NewConfig()
	v, err := parseKafkaVersion(k.Version)
	if err != nil {
		return nil, err
	}
	sc.Version = v
	sc.ClientID = k.ClientID
	sc.Consumer.Offsets.AutoCommit.Enable = false
	sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	if k.InitialOffset == "newest" {
		sc.Consumer.Offsets.Initial = sarama.OffsetNewest
	}
	sc.Consumer.Return.Errors = true
	sc.Consumer.Group.Session.Timeout = k.SessionTimeout.D()
	sc.Consumer.Group.Heartbeat.Interval = k.SessionTimeout.D() / 3
	sc.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategySticky()}
	// A revoked partition drains its in-flight records before it is released.
	sc.Consumer.Group.Rebalance.Timeout = k.RebalanceDrain.D() + 10*time.Second
	sc.ChannelBufferSize = k.FetchBufferRecords
	sc.Producer.RequiredAcks = sarama.WaitForAll
	sc.Producer.Return.Successes = true
	sc.Producer.Return.Errors = true
	sc.Producer.Retry.Max = 5
	sc.Metadata.RefreshFrequency = time.Minute
	if err := applyKafkaSecurity(sc, k); err != nil {
		return nil, err
	}
	return sc, nil
}

// groupHandler is the sarama.ConsumerGroupHandler: one ConsumeClaim per
// partition this member owns in the current generation.
type groupHandler struct {
	s *Saver

	commitStop chan struct{}
	commitWG   sync.WaitGroup
}

func (h *groupHandler) Setup(sess sarama.ConsumerGroupSession) error {
	h.s.logger.Info("kafka partitions assigned", "claims", fmt.Sprint(sess.Claims()), "generation", sess.GenerationID())
	h.commitStop = make(chan struct{})
	h.commitWG.Add(1)
	go func() {
		defer h.commitWG.Done()
		t := time.NewTicker(h.s.cfg.Kafka.CommitInterval.D())
		defer t.Stop()
		for {
			select {
			case <-t.C:
				h.commit(sess)
			case <-h.commitStop:
				return
			}
		}
	}()
	return nil
}

func (h *groupHandler) Cleanup(sess sarama.ConsumerGroupSession) error {
	close(h.commitStop)
	h.commitWG.Wait()
	h.commit(sess)
	return nil
}

func (h *groupHandler) commit(sess sarama.ConsumerGroupSession) {
	sess.Commit()
	// sarama reports commit errors on the group's Errors channel; a commit
	// that failed is retried with the next one, the marks stay.
	h.s.m.commits.Inc()
}

func (h *groupHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	s := h.s
	topic, part := claim.Topic(), claim.Partition()
	tr := newPartTracker(func(next int64) { sess.MarkOffset(topic, part, next, "") })
	if off := claim.InitialOffset(); off >= 0 {
		tr.position = off
	} else if resolved, err := s.kclient.GetOffset(topic, part, off); err == nil {
		// No commit yet: oldest or newest, resolved now (only the lag
		// estimate uses it).
		tr.position = resolved
	}
	s.claimsMu.Lock()
	s.claims[part] = claimState{claim: claim, tracker: tr}
	s.claimsMu.Unlock()
	ctx := sess.Context()
	prefix := topic + "/" + strconv.Itoa(int(part)) + "/"
	defer func() {
		// Whatever is in flight gets a bounded chance to finish, so the next
		// owner does not redo it; what is still open then is redone by
		// whoever reads the partition next (harmless: the ids are stable).
		s.writer.flushSoon()
		idle := tr.waitIdle(s.hardCtx, s.cfg.Kafka.RebalanceDrain.D())
		tr.close()
		s.claimsMu.Lock()
		if s.claims[part].tracker == tr {
			delete(s.claims, part)
		}
		s.claimsMu.Unlock()
		if !idle {
			s.logger.Warn("partition released with records in flight; they will be read again",
				"topic", topic, "partition", part, "in_flight", tr.outstanding())
		}
	}()
	for {
		select {
		case msg, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			s.m.consumed.Inc()
			seq := tr.add(msg.Offset)
			rec := &record{key: msg.Key, value: msg.Value, source: prefix + strconv.FormatInt(msg.Offset, 10),
				ack: ack{tracker: tr, seq: seq}}
			if !s.route(ctx, rec) {
				tr.forget(seq)
				return nil
			}
		case <-ctx.Done():
			return nil
		}
	}
}

// route decodes a record and sends it to the writer or the dead-letter
// topic; false when ctx ended first.
func (s *Saver) route(ctx context.Context, rec *record) bool {
	now := s.now()
	m, reason, err := decodeRecord(rec.value, now, s.cfg.FutureSkew.D(), s.cfg.Elasticsearch.RetentionDays)
	if reason == ReasonFuture {
		s.m.futureSkew.Set(m.Time().Sub(now).Seconds())
		s.future.note(s.logger, &m, now, s.cfg.FutureSkew.D())
	}
	if err == nil {
		rec.lines, rec.docOff, err = appendBulkItem(make([]byte, 0, 256+len(rec.value)*2), s.cfg.Elasticsearch.OpType, &m)
		if err != nil {
			reason = ReasonInvalid
		}
	}
	if err != nil {
		s.deadLetterLog(rec, reason, err)
		return s.dlq.trySend(ctx, rec, reason+": "+err.Error())
	}
	rec.ts = m.Timestamp
	return s.writer.submit(ctx, rec)
}

func (s *Saver) deadLetterLog(rec *record, reason string, err error) {
	s.dlqLogMu.Lock()
	defer s.dlqLogMu.Unlock()
	if time.Since(s.dlqLogAt) < 10*time.Second {
		s.dlqLogSuppressed++
		return
	}
	s.logger.Warn("record goes to the dead-letter topic", "source", rec.source, "reason", reason, "err", err,
		"suppressed_since_last", s.dlqLogSuppressed)
	s.dlqLogAt, s.dlqLogSuppressed = time.Now(), 0
}

type claimState struct {
	claim   sarama.ConsumerGroupClaim
	tracker *partTracker
}

// lag is the number of records in this saver's partitions not yet stored or
// dead-lettered (high water mark minus committable position, summed); false
// while it owns no partition.
func (s *Saver) lag() (int64, bool) {
	s.claimsMu.Lock()
	defer s.claimsMu.Unlock()
	if len(s.claims) == 0 {
		return 0, false
	}
	var lag int64
	for _, c := range s.claims {
		hwm := c.claim.HighWaterMarkOffset()
		pos := c.tracker.pos()
		if pos < 0 {
			pos = 0 // nothing received yet: count the whole partition
		}
		lag += max(0, hwm-pos)
	}
	return lag, true
}
