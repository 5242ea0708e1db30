// Package savertest helps tests drive a saver through the real components:
// it produces records to Kafka with sarama, reads a consumer group's
// committed offsets, and asks Elasticsearch what it holds. Like httptest, it
// starts nothing fake: the broker and the search server are the caller's.
package savertest

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/olivere/elastic/v7"

	"github.com/falconet/falconet/metric"
)

// Record is a Kafka record to produce.
type Record struct {
	Key, Value []byte
}

// Records encodes metrics as the relay does: key = series key, value =
// canonical JSON.
func Records(ms []metric.Metric) []Record {
	out := make([]Record, len(ms))
	for i := range ms {
		v, err := json.Marshal(ms[i])
		if err != nil {
			panic(err)
		}
		out[i] = Record{Key: []byte(ms[i].SeriesKey()), Value: v}
	}
	return out
}

// Produce sends recs to topic with acks=all, in batches, and fails the test
// on any error.
func Produce(t testing.TB, broker, topic string, recs []Record) {
	t.Helper()
	sc := sarama.NewConfig()
	sc.Producer.RequiredAcks = sarama.WaitForAll
	sc.Producer.Return.Successes = true
	p, err := sarama.NewSyncProducer([]string{broker}, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Close() }()
	for len(recs) > 0 {
		n := min(len(recs), 5000)
		msgs := make([]*sarama.ProducerMessage, n)
		for i, r := range recs[:n] {
			msgs[i] = &sarama.ProducerMessage{Topic: topic, Value: sarama.ByteEncoder(r.Value)}
			if r.Key != nil {
				msgs[i].Key = sarama.ByteEncoder(r.Key)
			}
		}
		if err := p.SendMessages(msgs); err != nil {
			t.Fatalf("produce: %v", err)
		}
		recs = recs[n:]
	}
}

// Position is where a produced record landed.
type Position struct {
	Partition int32
	Offset    int64
}

// ProduceOne sends recs one by one (acks=all) and returns where each landed.
func ProduceOne(t testing.TB, broker, topic string, recs []Record) []Position {
	t.Helper()
	sc := sarama.NewConfig()
	sc.Producer.RequiredAcks = sarama.WaitForAll
	sc.Producer.Return.Successes = true
	p, err := sarama.NewSyncProducer([]string{broker}, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Close() }()
	msgs := make([]*sarama.ProducerMessage, len(recs))
	for i, r := range recs {
		msgs[i] = &sarama.ProducerMessage{Topic: topic, Key: sarama.ByteEncoder(r.Key), Value: sarama.ByteEncoder(r.Value)}
	}
	if err := p.SendMessages(msgs); err != nil {
		t.Fatalf("produce: %v", err)
	}
	out := make([]Position, len(msgs))
	for i, m := range msgs {
		out[i] = Position{Partition: m.Partition, Offset: m.Offset}
	}
	return out
}

// CommittedByPartition returns the group's committed offset per partition
// of topic (partitions without a commit are absent).
func CommittedByPartition(t testing.TB, broker, topic, group string) map[int32]int64 {
	t.Helper()
	sc := sarama.NewConfig()
	sc.Version = sarama.V2_1_0_0
	admin, err := sarama.NewClusterAdmin([]string{broker}, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = admin.Close() }()
	resp, err := admin.ListConsumerGroupOffsets(group, nil)
	if err != nil {
		if errors.Is(err, sarama.ErrGroupIDNotFound) {
			return map[int32]int64{}
		}
		t.Fatal(err)
	}
	out := map[int32]int64{}
	for p, b := range resp.Blocks[topic] {
		if b.Offset >= 0 {
			out[p] = b.Offset
		}
	}
	return out
}

// Committed returns the group's committed offsets and the topic's end
// offsets, each summed over the partitions (0 committed for a group that
// does not exist yet).
func Committed(t testing.TB, broker, topic, group string) (commit, end int64) {
	t.Helper()
	sc := sarama.NewConfig()
	sc.Version = sarama.V2_1_0_0
	client, err := sarama.NewClient([]string{broker}, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = client.Close() }()
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	parts, err := client.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: parts})
	if err != nil && !errors.Is(err, sarama.ErrGroupIDNotFound) {
		t.Fatal(err)
	}
	for _, p := range parts {
		newest, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			t.Fatal(err)
		}
		end += newest
		if resp == nil {
			continue
		}
		if b := resp.GetBlock(topic, p); b != nil && b.Offset > 0 {
			commit += b.Offset
		}
	}
	return commit, end
}

// DeadLetter is a record read from the dead-letter topic.
type DeadLetter struct {
	Value   string
	Headers map[string]string
}

// ReadTopic reads topic from the oldest offset of every partition until it
// has want records or timeout passes.
func ReadTopic(t testing.TB, broker, topic string, want int, timeout time.Duration) []DeadLetter {
	t.Helper()
	c, err := sarama.NewConsumer([]string{broker}, sarama.NewConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	parts, err := c.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	msgs := make(chan *sarama.ConsumerMessage)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for _, p := range parts {
		pc, err := c.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = pc.Close() }()
		go func() {
			for {
				select {
				case m := <-pc.Messages():
					select {
					case msgs <- m:
					case <-ctx.Done():
						return
					}
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	var out []DeadLetter
	for len(out) < want {
		select {
		case m := <-msgs:
			d := DeadLetter{Value: string(m.Value), Headers: map[string]string{}}
			for _, h := range m.Headers {
				d.Headers[string(h.Key)] = string(h.Value)
			}
			out = append(out, d)
		case <-ctx.Done():
			return out
		}
	}
	return out
}

// NewESClient is an olivere client for url without sniffing or health
// checks.
func NewESClient(t testing.TB, url string) *elastic.Client {
	t.Helper()
	c, err := elastic.NewClient(elastic.SetURL(url), elastic.SetSniff(false), elastic.SetHealthcheck(false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return c
}

// Count is the number of documents in the indices matching pattern after a
// refresh: 0 when none exist, -1 when Elasticsearch does not answer.
func Count(es *elastic.Client, pattern string) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _ = es.Refresh(pattern).Do(ctx) // a missing index is fine here
	n, err := es.Count(pattern).Do(ctx)
	if err != nil {
		if elastic.IsNotFound(err) {
			return 0
		}
		return -1
	}
	return n
}

// WaitFor polls cond every 20 ms until it reports true, and fails the test
// with cond's last state after timeout.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; last state: %s", timeout, what, state)
		}
		<-tick.C
	}
}
