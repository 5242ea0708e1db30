package saver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/olivere/elastic/v7"
	"github.com/prometheus/client_golang/prometheus"
)

// ErrClosed is returned by Run after Close.
var ErrClosed = errors.New("saver: closed")

// Saver moves metrics from Kafka into Elasticsearch.
type Saver struct {
	cfg    Config
	logger *slog.Logger
	m      *metrics
	now    func() time.Time

	es       *elastic.Client
	writer   *writer
	dlq      *deadLetters
	rollups  *rollupScheduler
	kclient  sarama.Client
	producer sarama.SyncProducer
	group    sarama.ConsumerGroup
	sc       *sarama.Config
	// kafkaErr is why the saver is not connected to Kafka (nil once it is).
	kafkaErr atomic.Pointer[string]

	// hardCtx ends when the shutdown budget is spent: bulks and dead
	// letters in flight are abandoned (their offsets stay uncommitted).
	hardCtx    context.Context
	hardCancel context.CancelFunc

	mu      sync.Mutex
	running bool
	closed  bool
	joined  bool

	claimsMu sync.Mutex
	claims   map[int32]claimState // partitions owned now

	dlqLogMu         sync.Mutex
	dlqLogAt         time.Time
	dlqLogSuppressed int
	future           futureLog // metrics refused as too far in the future (future.go)
}

// Option adjusts a Saver (tests).
type Option func(*Saver)

// WithClock replaces time.Now (future-skew and retention decisions).
func WithClock(now func() time.Time) Option { return func(s *Saver) { s.now = now } }

// New checks cfg and connects the Elasticsearch client and the dead-letter
// producer. It does not need Elasticsearch to be up. reg may be nil.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer, opts ...Option) (*Saver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Saver{cfg: cfg, logger: logger, m: newMetrics(reg), now: time.Now, claims: map[int32]claimState{}}
	for _, o := range opts {
		o(s)
	}
	if reg != nil {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "falconet_saver_lag_records",
			Help: "Records in this saver's partitions not yet stored or dead-lettered."}, func() float64 {
			lag, _ := s.lag()
			return float64(lag)
		}))
	}
	s.hardCtx, s.hardCancel = context.WithCancel(context.Background())
	es, err := NewESClient(&cfg.Elasticsearch)
	if err != nil {
		return nil, err
	}
	s.es = es
	if s.sc, err = saramaConfig(&cfg.Kafka); err != nil {
		return nil, err
	}
	logSecurity(logger, &s.cfg)
	msg := "kafka: not connected yet"
	s.kafkaErr.Store(&msg)
	retry := retrySleeper(cfg.Elasticsearch.RetryInitial.D(), cfg.Elasticsearch.RetryMax.D())
	// the producer is set once Run connected to Kafka, before any record
	s.dlq = newDeadLetters(cfg.Kafka.DLQTopic, nil, s.m, logger, retry)
	s.writer = newWriter(&s.cfg.Elasticsearch, es, s.dlq, s.m, logger)
	if cfg.Rollup.Enabled {
		s.rollups = newRollupScheduler(&s.cfg, es, s.m, logger, s.now)
		s.rollups.caughtUp = s.caughtUp
		s.rollups.leader = s.ownsPartitionZero
		s.writer.onStored = s.rollups.stored
	}
	return s, nil
}

// NewESClient is the olivere client the saver uses: no sniffing (works
// through load balancers and with one node), no start-up health check (the
// saver starts while Elasticsearch is down and waits for it).
func NewESClient(cfg *ElasticsearchConfig) (*elastic.Client, error) {
	transport, err := esTransport(cfg)
	if err != nil {
		return nil, err
	}
	auth, err := esAuthOptions(cfg)
	if err != nil {
		return nil, err
	}
	opts := []elastic.ClientOptionFunc{
		elastic.SetURL(cfg.URLs...),
		elastic.SetSniff(false),
		elastic.SetHealthcheck(false),
		elastic.SetGzip(cfg.Gzip),
		elastic.SetHttpClient(&http.Client{Transport: transport}),
	}
	opts = append(opts, auth...)
	c, err := elastic.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("saver: elasticsearch client: %w", err)
	}
	return c, nil
}

// Run consumes until ctx ends, then shuts down within the configured
// shutdown_timeout: stop fetching, finish in-flight bulks, commit, leave the
// group. It returns nil after a clean shutdown.
func (s *Saver) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	if s.running {
		s.mu.Unlock()
		return errors.New("saver: Run called twice")
	}
	s.running = true
	s.mu.Unlock()

	if !s.connectKafka(ctx) {
		s.shutdownClients()
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		return nil
	}
	if s.cfg.Elasticsearch.InstallTemplate {
		if err := s.installTemplatesRetrying(ctx); err != nil {
			s.shutdownClients()
			return err
		}
	}

	var wg sync.WaitGroup
	var bg sync.WaitGroup // writer and dead letters: live until the consumer stopped
	bg.Add(2)
	go func() { defer bg.Done(); s.writer.run(s.hardCtx) }()
	go func() { defer bg.Done(); s.dlq.run(s.hardCtx) }()

	wg.Add(1)
	go func() {
		// The shutdown budget starts when ctx ends.
		defer wg.Done()
		select {
		case <-ctx.Done():
			t := time.NewTimer(s.cfg.ShutdownTimeout.D())
			defer t.Stop()
			select {
			case <-t.C:
				s.logger.Warn("shutdown budget spent, abandoning in-flight writes", "shutdown_timeout", s.cfg.ShutdownTimeout.D())
				s.hardCancel()
			case <-s.hardCtx.Done():
			}
		case <-s.hardCtx.Done():
		}
	}()
	wg.Add(1)
	go func() { defer wg.Done(); s.retentionLoop(ctx) }()
	if s.rollups != nil {
		wg.Add(1)
		go func() { defer wg.Done(); s.rollups.run(ctx) }()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for err := range s.group.Errors() {
			s.m.kafkaErrors.Inc()
			s.logger.Warn("kafka consumer group error", "err", err)
		}
	}()

	h := &groupHandler{s: s}
	var runErr error
	for ctx.Err() == nil {
		s.setJoined(true)
		err := s.group.Consume(ctx, []string{s.cfg.Kafka.Topic}, h)
		s.setJoined(false)
		if err != nil {
			if errors.Is(err, sarama.ErrClosedConsumerGroup) {
				break
			}
			s.logger.Warn("kafka consume failed, retrying", "err", err)
			if !retrySleeper(time.Second, 10*time.Second)(ctx, 1) {
				break
			}
		}
	}

	// Shutdown: the consume loop has returned, so every claim drained (up
	// to rebalance_drain or the shutdown budget) and Cleanup committed.
	// Leave the group, then stop the writer: nothing it finishes now could
	// be committed any more.
	if err := s.group.Close(); err != nil {
		runErr = fmt.Errorf("saver: leave group: %w", err)
	}
	s.hardCancel()
	bg.Wait()
	wg.Wait()
	if err := s.producer.Close(); err != nil && runErr == nil {
		runErr = fmt.Errorf("saver: close producer: %w", err)
	}
	_ = s.kclient.Close()
	s.es.Stop()
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return runErr
}

func (s *Saver) shutdownClients() {
	if s.group != nil {
		_ = s.group.Close()
		_ = s.producer.Close()
		_ = s.kclient.Close()
	}
	s.es.Stop()
	s.hardCancel()
}

func (s *Saver) setJoined(v bool) {
	s.mu.Lock()
	s.joined = v
	s.mu.Unlock()
}

// Close releases the clients of a Saver whose Run was never called; after
// Run it does nothing. It is idempotent.
func (s *Saver) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.running {
		return nil
	}
	s.closed = true
	s.shutdownClients()
	return nil
}

// Health is nil while the saver works, or why it does not: Elasticsearch
// or the dead-letter topic failing for more than a minute.
func (s *Saver) Health() error {
	if e := s.kafkaErr.Load(); e != nil {
		return errors.New(*e)
	}
	if err := s.writer.health(time.Minute); err != nil {
		return err
	}
	return s.dlq.health(time.Minute)
}

// caughtUp reports whether this saver has stored (nearly) everything in its
// partitions: rollups wait for it, so a saver catching up a backlog does not
// compute windows whose data is still in Kafka. "Nearly" is what the writer
// holds in flight at most.
func (s *Saver) caughtUp() (bool, string) {
	lag, ok := s.lag()
	if !ok {
		return false, "no partitions assigned"
	}
	limit := int64((s.cfg.Elasticsearch.MaxInFlight + 2) * s.cfg.Elasticsearch.BulkDocs)
	if lag > limit {
		return false, fmt.Sprintf("%d records behind (limit %d)", lag, limit)
	}
	return true, ""
}

// ownsPartitionZero makes the saver that owns partition 0 the rollup leader:
// exactly one member of the group at a time, no extra coordination.
func (s *Saver) ownsPartitionZero() bool {
	s.claimsMu.Lock()
	defer s.claimsMu.Unlock()
	_, ok := s.claims[0]
	return ok
}

// connectKafka connects the client, the dead-letter producer and the
// consumer group, checking first that the topics exist; it retries (logging
// what to fix, /healthz saying it) until it succeeds or ctx ends (false).
func (s *Saver) connectKafka(ctx context.Context) bool {
	k := &s.cfg.Kafka
	for attempt := 1; ; attempt++ {
		err := s.connectKafkaOnce()
		if err == nil {
			s.kafkaErr.Store(nil)
			s.logger.Info("connected to kafka", "brokers", k.Brokers, "topic", k.Topic, "dlq_topic", k.DLQTopic)
			return true
		}
		msg := "kafka: not connected: " + err.Error()
		s.kafkaErr.Store(&msg)
		if attempt == 1 || attempt%10 == 0 {
			s.logger.Error("cannot connect to kafka; retrying", "brokers", k.Brokers, "err", err, "attempt", attempt)
		}
		if !retrySleeper(250*time.Millisecond, 10*time.Second)(ctx, attempt) {
			return false
		}
	}
}

func (s *Saver) connectKafkaOnce() error {
	k := &s.cfg.Kafka
	client, err := sarama.NewClient(k.Brokers, s.sc)
	if err != nil {
		if why := explainKafkaError(err, k); why != "" {
			return fmt.Errorf("%s: %w", why, err)
		}
		return err
	}
	if err := checkTopics(client, k, s.logger); err != nil {
		_ = client.Close()
		return err
	}
	producer, err := sarama.NewSyncProducer(k.Brokers, s.sc)
	if err != nil {
		_ = client.Close()
		return fmt.Errorf("dead-letter producer: %w", err)
	}
	group, err := sarama.NewConsumerGroup(k.Brokers, k.Group, s.sc)
	if err != nil {
		_ = producer.Close()
		_ = client.Close()
		return fmt.Errorf("consumer group: %w", err)
	}
	s.mu.Lock()
	s.kclient, s.producer, s.group = client, producer, group
	s.mu.Unlock()
	s.dlq.producer = producer
	return nil
}
