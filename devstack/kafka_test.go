package devstack

import (
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// TestKafkaSpeaksTheProtocol produces with acks=all through sarama and reads
// the records back with a sarama consumer: the broker is real enough for the
// relay and the saver.
func TestKafkaSpeaksTheProtocol(t *testing.T) {
	k := StartKafkaT(t, "falconet-metrics")
	cfg := sarama.NewConfig()
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Return.Successes = true
	cfg.Producer.Idempotent = true
	cfg.Net.MaxOpenRequests = 1
	cfg.Version = sarama.V3_6_0_0
	p, err := sarama.NewSyncProducer([]string{k.Addr()}, cfg)
	if err != nil {
		t.Fatalf("producer: %v", err)
	}
	defer p.Close()
	part, off, err := p.SendMessage(&sarama.ProducerMessage{Topic: "falconet-metrics", Key: sarama.StringEncoder("web-1/cpu.idle/"), Value: sarama.StringEncoder(`{"x":1}`)})
	if err != nil {
		t.Fatalf("produce: %v", err)
	}
	c, err := sarama.NewConsumer([]string{k.Addr()}, cfg)
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	defer c.Close()
	pc, err := c.ConsumePartition("falconet-metrics", part, off)
	if err != nil {
		t.Fatalf("consume partition %d: %v", part, err)
	}
	defer pc.Close()
	select {
	case msg := <-pc.Messages():
		if string(msg.Value) != `{"x":1}` || string(msg.Key) != "web-1/cpu.idle/" {
			t.Fatalf("read back key %q value %q", msg.Key, msg.Value)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no record read back within 10s")
	}
}
