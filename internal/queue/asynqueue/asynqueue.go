// Package asynqueue is the optin.Queue shared by every replica, on Redis with hibiken/asynq: the
// conversation SID is the task ID (so a conversation is queued once), workers on any replica take the
// task, and a replica that dies mid-flow loses its lease so that another one runs the task again.
package asynqueue

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/optinkit/optin/internal/optin"
	"github.com/optinkit/optin/internal/redisconn"
	"github.com/optinkit/optin/internal/tracing"
	"github.com/optinkit/optin/internal/twiliocall"
)

// taskCheckInterval is how often an idle replica looks for work.
const taskCheckInterval = 10 * time.Millisecond

// Options configure a Queue.
type Options struct {
	// Concurrency is how many flows this replica works on at once.
	Concurrency int
	// MaxRetry is how many times a flow's work runs again after failing transiently before it is given up.
	MaxRetry int
	// ShutdownTimeout is how long Shutdown waits for running work before handing it back to Redis.
	ShutdownTimeout time.Duration
	// Log receives asynq's own warnings and the flows' logs.
	Log zerolog.Logger
	// RunDelay is the wait before the nth run again (n from 1); nil means twiliocall.RunDelay.
	RunDelay func(n int, err error) time.Duration
	// Name tells this queue's work from another's on the same Redis: "" for the opt-in flows (task
	// type optin:flow, queue optin), "callback" for events (optin:callback, queue optin-callback).
	Name string
	// Tracer, when set, makes a span of each run, named by the task type, in the trace of the request
	// that queued it (its trace context travels in the task) — or, with NewRoot, in a trace of its own
	// linked to that one.
	Tracer  trace.Tracer
	NewRoot bool
	// SpanName names the span of a run; empty: the task type.
	SpanName string
	// Rerun: work enqueued while its key runs runs once more after, as a follow-up task due in the
	// next second (one per key and second), for a worker that must see whatever was recorded until
	// its very end.
	Rerun bool
}

// Queue enqueues and works on opt-ins through asynq.
type Queue struct {
	redis asynq.RedisConnOpt
	opts  Options
	// rdb carries Enqueue and Depth. Its calls end with their context, so a stalled Redis costs a
	// webhook its own deadline; asynq's server keeps connections of its own.
	rdb       redis.UniversalClient
	client    *asynq.Client
	inspector *asynq.Inspector
	servers   []*asynq.Server
	taskType  string
	queueName string
}

var _ optin.Queue = (*Queue)(nil)

// Open connects to the Redis at url for enqueuing; Start begins working.
func Open(url string, opts Options) (*Queue, error) {
	conn, err := redisconn.Parse(url)
	if err != nil {
		return nil, fmt.Errorf("parsing redis url: %w", err)
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 10
	}
	if opts.MaxRetry <= 0 {
		opts.MaxRetry = 10
	}
	if opts.RunDelay == nil {
		opts.RunDelay = twiliocall.RunDelay
	}
	rdb := conn.Universal()
	q := &Queue{redis: conn.Asynq(), opts: opts, rdb: rdb, client: asynq.NewClientFromRedisClient(rdb), inspector: asynq.NewInspectorFromRedisClient(rdb),
		taskType: "optin:flow", queueName: "optin"}
	if opts.Name != "" {
		q.taskType, q.queueName = "optin:"+opts.Name, "optin-"+opts.Name
	}
	return q, nil
}

// Enqueue queues the conversation's work unless it is queued or running already.
func (q *Queue) Enqueue(ctx context.Context, conversationSid string) error {
	_, err := q.client.EnqueueContext(ctx, asynq.NewTask(q.taskType, q.payload(ctx, conversationSid)),
		asynq.TaskID(conversationSid), asynq.Queue(q.queueName), asynq.MaxRetry(q.opts.MaxRetry))
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		return q.revive(ctx, conversationSid)
	}
	return err
}

// revive makes a conversation's work runnable again when its task was archived (asynq keeps a task
// it stopped retrying under its id, which would refuse every later enqueue); a task queued or running
// is left alone.
func (q *Queue) revive(ctx context.Context, conversationSid string) error {
	info, err := q.inspector.GetTaskInfo(q.queueName, conversationSid)
	switch {
	case errors.Is(err, asynq.ErrTaskNotFound):
		// Finished in between: queue it again, once.
	case err != nil:
		return err
	case info.State == asynq.TaskStateActive && q.opts.Rerun:
		return q.followUp(ctx, conversationSid)
	case info.State != asynq.TaskStateArchived:
		return nil
	default:
		if err := q.inspector.DeleteTask(q.queueName, conversationSid); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
			return err
		}
	}
	_, err = q.client.EnqueueContext(ctx, asynq.NewTask(q.taskType, q.payload(ctx, conversationSid)),
		asynq.TaskID(conversationSid), asynq.Queue(q.queueName), asynq.MaxRetry(q.opts.MaxRetry))
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		return nil // another enqueue (or replica) got there first: it is queued
	}
	return err
}

// followUp queues the key's work to run again once the running task is done: a task of its own due
// at the next whole second, named by the key and that second, so that many enqueues during one run
// make one follow-up, and one that exists is never running yet (its second is still to come).
func (q *Queue) followUp(ctx context.Context, key string) error {
	at := time.Now().Truncate(time.Second).Add(time.Second)
	_, err := q.client.EnqueueContext(ctx, asynq.NewTask(q.taskType, q.payload(ctx, key)),
		asynq.TaskID(key+followUpInfix+strconv.FormatInt(at.Unix(), 10)), asynq.Queue(q.queueName),
		asynq.MaxRetry(q.opts.MaxRetry), asynq.ProcessAt(at))
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		return nil
	}
	return err
}

// followUpInfix joins a key and a second in a follow-up's task id.
const followUpInfix = "~at:"

// giveUpLater queues the give-up of a conversation whose own give-up failed, so that the flow does
// not stay running for ever: a task of its own, retried as the work was.
func (q *Queue) giveUpLater(ctx context.Context, conversationSid string, n int, cause error) error {
	_, err := q.client.EnqueueContext(ctx, asynq.NewTask(q.taskType+giveUpSuffix, []byte(conversationSid)),
		asynq.TaskID(giveUpSuffix+conversationSid), asynq.Queue(q.queueName), asynq.MaxRetry(q.opts.MaxRetry),
		asynq.ProcessIn(q.opts.RunDelay(n, cause)))
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		return nil
	}
	return err
}

// payload is the task's body: the key, then — when traced — a newline and the trace context of the
// request that queued it. Tasks queued by an earlier version hold the key alone.
func (q *Queue) payload(ctx context.Context, key string) []byte {
	if q.opts.Tracer == nil {
		return []byte(key)
	}
	if tp := tracing.Inject(ctx); tp != "" {
		return []byte(key + "\n" + tp)
	}
	return []byte(key)
}

// giveUpSuffix marks the task type (and prefixes the id) of a give-up queued on its own.
const giveUpSuffix = ":giveup"

// Start runs w on this replica's workers.
func (q *Queue) Start(w optin.Worker) error {
	handler := asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		conv, traceparent, _ := strings.Cut(string(t.Payload()), "\n")
		retried, _ := asynq.GetRetryCount(ctx)
		maxRetry, _ := asynq.GetMaxRetry(ctx)
		if t.Type() == q.taskType+giveUpSuffix {
			err := w.GiveUp(ctx, conv, errors.New("gave up after its retries"))
			if err != nil && retried >= maxRetry {
				return q.giveUpLater(ctx, conv, retried+1, err) // still never wedged
			}
			return err
		}
		ctx, end := tracing.StartWork(ctx, q.opts.Tracer, cmp.Or(q.opts.SpanName, t.Type()), traceparent, q.opts.NewRoot, attribute.Int("run", retried+1))
		err := w.Work(ctx, conv)
		end(err)
		if err == nil {
			return nil
		}
		if retried >= maxRetry {
			if gerr := w.GiveUp(ctx, conv, err); gerr != nil {
				zerolog.Ctx(ctx).Error().Err(gerr).Str("task", conv).Msg("recording give-up; queued again")
				return q.giveUpLater(ctx, conv, retried+1, gerr)
			}
			return nil
		}
		return err
	})
	for _, workers := range split(q.opts.Concurrency) {
		srv := asynq.NewServer(q.redis, q.config(workers))
		if err := srv.Start(handler); err != nil {
			q.stopServers()
			return err
		}
		q.servers = append(q.servers, srv)
	}
	return nil
}

// split shares a replica's workers among asynq servers: one per 100 workers, at most 8. Each server
// takes tasks from Redis one at a time, a round trip each; under load a round trip takes a millisecond
// or more, which capped a single server near a thousand opt-ins a second and queued the rest.
func split(concurrency int) []int {
	n := min(max(concurrency/100, 1), 8)
	out := make([]int, n)
	for i := range out {
		out[i] = concurrency / n
		if i < concurrency%n {
			out[i]++
		}
	}
	return out
}

func (q *Queue) config(concurrency int) asynq.Config {
	log := q.opts.Log
	return asynq.Config{
		Concurrency:     concurrency,
		Queues:          map[string]int{q.queueName: 1},
		ShutdownTimeout: q.opts.ShutdownTimeout,
		BaseContext:     func() context.Context { return log.WithContext(context.Background()) },
		RetryDelayFunc:  func(n int, err error, _ *asynq.Task) time.Duration { return q.opts.RunDelay(n+1, err) },
		Logger:          logger{log},
		LogLevel:        asynq.WarnLevel,
		// Retries are due after a second or two; look for them every second, not asynq's default five.
		DelayedTaskCheckInterval: time.Second,
		// asynq polls: when it finds the queue empty it sleeps 0.5–1.5 × this before looking again, and
		// at its default of a second an opt-in enqueued just after a miss waited up to 1.5 s (completion
		// p99 10.9× the upstream latency at 1,000 webhooks/s). Looking every 5–15 ms costs an idle
		// replica ~100 small Redis scripts a second per server.
		TaskCheckInterval: taskCheckInterval,
	}
}

// stopServers shuts every server down at once.
func (q *Queue) stopServers() {
	var wg sync.WaitGroup
	for _, srv := range q.servers {
		wg.Go(srv.Shutdown)
	}
	wg.Wait()
}

// Shutdown stops taking work and waits for running work until ctx ends (or ShutdownTimeout, whichever
// comes first); asynq then hands unfinished work back to Redis. Work still running when ctx ends keeps
// its lease until the process exits, and another replica takes it over once the lease lapses. Either
// way the queue's own connections are closed: it enqueues nothing more.
func (q *Queue) Shutdown(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		q.stopServers()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("waiting for in-flight opt-ins: %w", ctx.Err())
	}
	return errors.Join(err, q.rdb.Close())
}

// Depth counts the opt-ins waiting in Redis — queued, or scheduled for another run — across all replicas.
func (q *Queue) Depth() (int, error) {
	queues, err := q.inspector.Queues()
	if err != nil {
		return 0, err
	}
	if !slices.Contains(queues, q.queueName) {
		return 0, nil // nothing was ever enqueued
	}
	info, err := q.inspector.GetQueueInfo(q.queueName)
	if err != nil {
		return 0, err
	}
	return info.Pending + info.Scheduled + info.Retry, nil
}

// Ping reports whether Redis answers.
func (q *Queue) Ping(ctx context.Context) error { return q.rdb.Ping(ctx).Err() }

// logger passes asynq's messages to zerolog.
type logger struct{ zerolog.Logger }

func (l logger) Debug(args ...any) { l.Logger.Debug().Msg(fmt.Sprint(args...)) }
func (l logger) Info(args ...any)  { l.Logger.Info().Msg(fmt.Sprint(args...)) }
func (l logger) Warn(args ...any)  { l.Logger.Warn().Msg(fmt.Sprint(args...)) }
func (l logger) Error(args ...any) { l.Logger.Error().Msg(fmt.Sprint(args...)) }
func (l logger) Fatal(args ...any) { l.Logger.Fatal().Msg(fmt.Sprint(args...)) }
