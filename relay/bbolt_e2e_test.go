package relay_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/falconet/falconet/agent/sender"
	"github.com/falconet/falconet/buffer"
	"github.com/falconet/falconet/devstack"
	"github.com/falconet/falconet/metric"
	"github.com/falconet/falconet/relay/relaytest"
)

// TestEndToEndWithBboltQueue runs the real agent path: the bbolt queue (fsync
// on), the sender, two relays (the first killed mid-stream), the dev Kafka.
func TestEndToEndWithBboltQueue(t *testing.T) {
	k := devstack.StartKafkaT(t, topic)
	r1 := relaytest.Start(t, relaytest.Config(k.Addr()), nil)
	r2 := relaytest.Start(t, relaytest.Config(k.Addr()), nil)
	bcfg := buffer.DefaultConfig()
	bcfg.Path = filepath.Join(t.TempDir(), "buffer.db")
	q, err := buffer.Open(bcfg, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	want := map[string]bool{}
	for i := range 300 {
		ms := genBatch(i, 100)
		p, err := metric.EncodeBatch(nil, ms)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := q.Append(context.Background(), p, len(ms)); err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			want[m.DocID()] = true
		}
	}
	_, stop := startSender(t, sender.Config{MaxInFlight: 8}, q, r1.ProtocolAddr(), r2.ProtocolAddr())
	relaytest.WaitFor(t, 20*time.Second, "some batches acked", func() bool { return q.Stats().Batches <= 250 })
	r1.Kill()
	relaytest.WaitFor(t, 60*time.Second, "bbolt queue drained", func() bool { return q.Stats().Batches == 0 })
	stop()
	got := countRecords(t, relaytest.ReadTopic(t, k.Addr(), topic, len(want), 20*time.Second))
	for id := range want {
		if got[id] < 1 {
			t.Fatalf("metric %s missing", id)
		}
	}
	if st := q.Stats(); st.InFlight != 0 {
		t.Errorf("%d batches still in flight after the sender stopped, want 0", st.InFlight)
	}
}
