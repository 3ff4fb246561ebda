package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/time/rate"

	"github.com/optinkit/optin/internal/callback"
	"github.com/optinkit/optin/internal/chat"
	"github.com/optinkit/optin/internal/console"
	"github.com/optinkit/optin/internal/numberpool"
	"github.com/optinkit/optin/internal/optin"
	"github.com/optinkit/optin/internal/queue/asynqueue"
	"github.com/optinkit/optin/internal/queue/inproc"
	"github.com/optinkit/optin/internal/redisconn"
	"github.com/optinkit/optin/internal/store/memory"
	"github.com/optinkit/optin/internal/store/redisstore"
)

// workQueue is a Queue this program starts and stops.
type workQueue interface {
	optin.Queue
	Start(w optin.Worker) error
	Shutdown(ctx context.Context) error
	// Depth counts work waiting, for the optin_queue_depth gauge.
	Depth() (int, error)
}

// backend is where flows are kept and worked on: this process, or Redis shared with other replicas.
type backend struct {
	store optin.Store
	queue workQueue
	chats chat.Store
	// windows keeps when each person last wrote to each business number.
	windows chat.Windows
	// pairs leases the business numbers and indexes each pair's chat, for calls.
	pairs numberpool.IndexedStore
	// creates paces conversation creates: in this process, or in Redis for every replica.
	creates chat.Limiter
	// callbacks carries the chats' events to the platform; started only when a callback URL is set.
	callbacks workQueue
	// chatWork carries the work a chat records (held messages, nudges, moves to SMS, releases) to a
	// worker: one task per chat at a time, run once more when enqueued while it runs.
	chatWork workQueue
	// revocations keeps the console's logged-out sessions.
	revocations console.Revocations
	// tracer, when set, makes spans (tracing is on).
	tracer trace.Tracer
	// ping reports whether the backend can take work; readiness follows it.
	ping       func(ctx context.Context) error
	closeStore func() error
}

// close shuts the queues down, letting running work finish until ctx ends, then releases the store.
func (b *backend) close(ctx context.Context) error {
	return errors.Join(b.queue.Shutdown(ctx), b.callbacks.Shutdown(ctx), b.chatWork.Shutdown(ctx), b.closeStore())
}

// inprocMaxRuns bounds the runs of one opt-in in a single replica: with RunDelay's backoff, about
// twenty minutes of Twilio trouble before the flow is recorded as failed.
const inprocMaxRuns = 10

// Span names of a run of queued work: an opt-in, the delivery of an event to the platform, a chat's
// recorded work.
const (
	spanWork     = "optin.work"
	spanCallback = "optin.callback"
	spanChatWork = "optin.chatwork"
)

// chatWorkMaxRuns bounds the runs of a chat's recorded work before it is parked (the sweep keeps
// trying): with RunDelay's backoff, about twenty minutes.
const chatWorkMaxRuns = 10

// openBackend opens the store and the queues; with tracer set, each run of queued work is a span: an
// opt-in's in the trace of the webhook that queued it, an event's delivery in a trace of its own.
func openBackend(ctx context.Context, cfg config, log zerolog.Logger, tracer trace.Tracer) (*backend, error) {
	if cfg.RedisURL == "" {
		queue, callbacks := inproc.New(cfg.Workers, inprocMaxRuns, nil), inproc.New(cfg.Workers, callback.MaxRuns, callback.RunDelay)
		queue.Trace(tracer, spanWork, false)
		callbacks.Trace(tracer, spanCallback, true)
		chatWork := inproc.New(cfg.Workers, chatWorkMaxRuns, nil)
		chatWork.Trace(tracer, spanChatWork, false)
		chatWork.RerunOnEnqueue()
		return &backend{
			tracer:      tracer,
			store:       memory.New(cfg.FlowRetention),
			queue:       queue,
			callbacks:   callbacks,
			chatWork:    chatWork,
			chats:       memory.NewChats(cfg.FlowRetention),
			windows:     memory.NewWindows(),
			pairs:       memory.NewPairs(cfg.FlowRetention),
			revocations: memory.NewRevocations(),
			creates:     rate.NewLimiter(rate.Limit(cfg.CreateRate), createBurst(cfg.CreateRate)),
			ping:        func(context.Context) error { return nil },
			closeStore:  func() error { return nil },
		}, nil
	}
	conn, err := redisconn.Parse(cfg.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("OPTIN_REDIS_URL: %w", err)
	}
	where := conn.Where()
	store, err := redisstore.Open(cfg.RedisURL, cfg.FlowRetention)
	if err != nil {
		return nil, fmt.Errorf("OPTIN_REDIS_URL: %w", err)
	}
	store.WaitForReplicas(cfg.RedisWaitReplicas, cfg.RedisWaitTimeout)
	if err := waitForRedis(ctx, store.Ping, cfg.RedisStartupWait, log, where); err != nil {
		store.Close()
		return nil, fmt.Errorf("OPTIN_REDIS_URL: redis at %s unreachable (OPTIN_REDIS_STARTUP_WAIT=%s): %w", where, cfg.RedisStartupWait, err)
	}
	// Keys written under the names before hash tags are moved (once, by one replica): a lease under
	// an old name would be invisible, and its pair leased twice.
	if err := store.Migrate(ctx); err != nil {
		store.Close()
		return nil, fmt.Errorf("OPTIN_REDIS_URL: migrating keys: %w", err)
	}
	queue, err := asynqueue.Open(cfg.RedisURL, asynqueue.Options{
		Concurrency:     cfg.Workers,
		ShutdownTimeout: cfg.ShutdownTimeout,
		Log:             log,
		Tracer:          tracer,
		SpanName:        spanWork,
	})
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("OPTIN_REDIS_URL: %w", err)
	}
	callbacks, err := asynqueue.Open(cfg.RedisURL, asynqueue.Options{
		Name:            "callback",
		Concurrency:     cfg.Workers,
		MaxRetry:        callback.MaxRuns - 1,
		RunDelay:        callback.RunDelay,
		ShutdownTimeout: cfg.ShutdownTimeout,
		Log:             log,
		Tracer:          tracer,
		NewRoot:         true,
		SpanName:        spanCallback,
	})
	if err != nil {
		_ = queue.Shutdown(ctx)
		store.Close()
		return nil, fmt.Errorf("OPTIN_REDIS_URL: %w", err)
	}
	chatWork, err := asynqueue.Open(cfg.RedisURL, asynqueue.Options{
		Name:            "chatwork",
		Concurrency:     cfg.Workers,
		MaxRetry:        chatWorkMaxRuns - 1,
		ShutdownTimeout: cfg.ShutdownTimeout,
		Log:             log,
		Tracer:          tracer,
		SpanName:        spanChatWork,
		Rerun:           true,
	})
	if err != nil {
		_ = queue.Shutdown(ctx)
		_ = callbacks.Shutdown(ctx)
		store.Close()
		return nil, fmt.Errorf("OPTIN_REDIS_URL: %w", err)
	}
	log.Info().Str("redis", where).Msg("state and work shared through Redis")
	return &backend{tracer: tracer, store: store, queue: queue, callbacks: callbacks, chatWork: chatWork, chats: store.Chats(), windows: store.Windows(), pairs: store.Pairs(), revocations: store.Revocations(),
		creates: store.Limiter("conversation-create", cfg.CreateRate, createBurst(cfg.CreateRate)), ping: store.Ping, closeStore: store.Close}, nil
}

// createBurst lets a fifth of a second's creates go at once: a burst of starts is spread out rather
// than sent in one instant that Twilio's per-second window would refuse.
func createBurst(perSecond int) int { return max(perSecond/5, 1) }

// waitForRedis pings until Redis answers or wait has passed; with wait 0 it pings once.
func waitForRedis(ctx context.Context, ping func(context.Context) error, wait time.Duration, log zerolog.Logger, where string) error {
	deadline := time.Now().Add(wait)
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := ping(pctx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		log.Warn().Err(err).Str("redis", where).Msg("waiting for Redis")
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}
