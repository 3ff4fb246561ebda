// Package inproc is the in-process optin.Queue: work runs in goroutines of this process, retried with
// backoff, and is lost if the process dies. It is the default for a single replica without Redis.
//
// At most Workers runs go at once; the rest wait in a FIFO as a conversation SID each, and a run that
// failed waits for its next one on a timer, not in a goroutine. So a slow Twilio makes work wait, at
// a few dozen bytes each, instead of holding thousands of goroutines and connections.
package inproc

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/optinkit/optin/internal/optin"
	"github.com/optinkit/optin/internal/tracing"
	"github.com/optinkit/optin/internal/twiliocall"
)

// Queue runs each conversation's work at most once at a time, on at most workers at once.
type Queue struct {
	base     context.Context
	cancel   context.CancelFunc
	maxRuns  int
	workers  int
	runDelay func(n int, err error) time.Duration

	mu     sync.Mutex
	worker optin.Worker
	// closing: Shutdown has begun; nothing new is taken, what is queued still runs until its deadline.
	closing bool
	// active holds every conversation queued, running or waiting for another run.
	active  map[string]bool
	pending []run
	// waiting holds the timers of runs due again later.
	waiting map[string]*time.Timer
	running int
	wg      sync.WaitGroup
	// tracer, when set, makes a span of each run (span named spanName; newRoot: see tracing.StartWork).
	tracer   trace.Tracer
	spanName string
	newRoot  bool
	// rerun: work enqueued while its key runs runs once more after (dirty marks it), for a worker that
	// must see whatever was recorded until its very end (see RerunOnEnqueue).
	rerun bool
	dirty map[string]bool
}

// RerunOnEnqueue makes work enqueued while the same key runs run once more when that run ends: a run
// that finished reading just before the enqueue would otherwise miss what the enqueuer recorded. Call
// it before Start.
func (q *Queue) RerunOnEnqueue() { q.rerun, q.dirty = true, map[string]bool{} }

// run is one conversation's nth run, with the logger of the request that enqueued it and, when
// traced, its trace context.
type run struct {
	conv        string
	n           int
	log         *zerolog.Logger
	traceparent string
}

var _ optin.Queue = (*Queue)(nil)

// New returns a Queue that works on at most workers conversations at once (at least 1), gives up on
// one after maxRuns failed runs, and waits runDelay between runs (nil: twiliocall.RunDelay).
func New(workers, maxRuns int, runDelay func(n int, err error) time.Duration) *Queue {
	if runDelay == nil {
		runDelay = twiliocall.RunDelay
	}
	base, cancel := context.WithCancel(context.Background())
	return &Queue{base: base, cancel: cancel, maxRuns: maxRuns, workers: max(workers, 1), runDelay: runDelay,
		active: map[string]bool{}, waiting: map[string]*time.Timer{}}
}

// Trace makes a span, name, of each run, in the trace of the request that queued it (newRoot: in a
// trace of its own, linked to that one). Call it before Start.
func (q *Queue) Trace(t trace.Tracer, name string, newRoot bool) {
	q.tracer, q.spanName, q.newRoot = t, name, newRoot
}

// Start sets the worker; work enqueued before is refused.
func (q *Queue) Start(w optin.Worker) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.worker = w
	return nil
}

// Enqueue queues the conversation's work unless it is already queued or running here.
func (q *Queue) Enqueue(ctx context.Context, conversationSid string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.worker == nil {
		return errors.New("inproc: queue not accepting work")
	}
	if q.closing || q.base.Err() != nil {
		return errors.New("inproc: queue shut down")
	}
	if q.active[conversationSid] {
		if q.rerun {
			q.dirty[conversationSid] = true
		}
		return nil
	}
	q.active[conversationSid] = true
	r := run{conv: conversationSid, n: 1, log: zerolog.Ctx(ctx)}
	if q.tracer != nil {
		r.traceparent = tracing.Inject(ctx)
	}
	q.pending = append(q.pending, r)
	q.dispatchLocked()
	return nil
}

// dispatchLocked starts queued runs while workers are free.
func (q *Queue) dispatchLocked() {
	for q.running < q.workers && len(q.pending) > 0 && q.base.Err() == nil {
		r := q.pending[0]
		q.pending[0] = run{}
		q.pending = q.pending[1:]
		q.running++
		w := q.worker
		q.wg.Go(func() { q.runOnce(w, r) })
	}
	if len(q.pending) == 0 {
		q.pending = nil // let the backing array go after a burst
	}
}

// runOnce runs the conversation's work once, then frees the worker and decides what comes next.
func (q *Queue) runOnce(w optin.Worker, r run) {
	ctx, end := tracing.StartWork(r.log.WithContext(q.base), q.tracer, q.spanName, r.traceparent, q.newRoot, attribute.Int("run", r.n))
	err := w.Work(ctx, r.conv)
	end(err)
	again := false
	switch {
	case err == nil:
	case ctx.Err() != nil:
		r.log.Error().Err(err).Str("conversation_sid", r.conv).Msg("opt-in abandoned at shutdown")
	case r.n >= q.maxRuns:
		if gerr := w.GiveUp(ctx, r.conv, err); gerr != nil {
			// Never wedge: the work runs again later, and gives up again if it still fails.
			r.log.Error().Err(gerr).Str("conversation_sid", r.conv).Msg("recording give-up; will run again")
			again = true
		}
	default:
		again = true
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.running--
	dirty := q.dirty[r.conv]
	delete(q.dirty, r.conv) // a run due again sees what the enqueue recorded
	switch {
	case again && !q.closing:
		next := run{conv: r.conv, n: r.n + 1, log: r.log, traceparent: r.traceparent}
		q.waiting[r.conv] = time.AfterFunc(q.runDelay(r.n, err), func() { q.requeue(next) })
	case dirty && !q.closing && q.base.Err() == nil:
		q.pending = append(q.pending, run{conv: r.conv, n: 1, log: r.log, traceparent: r.traceparent})
	default:
		delete(q.active, r.conv)
	}
	q.dispatchLocked()
}

// requeue queues a run again after its delay, unless the queue has shut down (the work is then lost,
// as all work of this queue is when the process ends).
func (q *Queue) requeue(r run) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.waiting, r.conv)
	if q.closing || q.base.Err() != nil {
		delete(q.active, r.conv)
		return
	}
	q.pending = append(q.pending, r)
	q.dispatchLocked()
}

// Depth counts the conversations being worked on, queued or waiting for another run.
func (q *Queue) Depth() (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.active), nil
}

// Shutdown refuses new work, drops the runs waiting for a retry, and lets running and queued work go
// on until ctx ends; then it cancels what runs, drops what is still queued and waits for the runs to
// return.
func (q *Queue) Shutdown(ctx context.Context) error {
	q.mu.Lock()
	q.closing = true
	for conv, t := range q.waiting {
		t.Stop()
		delete(q.active, conv)
		delete(q.waiting, conv)
	}
	q.mu.Unlock()
	done := make(chan struct{})
	go func() { q.wg.Wait(); close(done) }()
	select {
	case <-done:
		q.cancel()
		return nil
	case <-ctx.Done():
		q.cancel()
		q.mu.Lock()
		for _, r := range q.pending {
			delete(q.active, r.conv)
		}
		q.pending = nil
		q.mu.Unlock()
		<-done
		return fmt.Errorf("waiting for in-flight opt-ins: %w", ctx.Err())
	}
}
