// Package inproc is the in-process optin.Queue: work runs in goroutines of this process, retried with
// backoff, and is lost if the process dies. It is the default for a single replica without Redis.
package inproc

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/optinkit/optin/internal/optin"
)

// Queue runs each conversation's work at most once at a time.
type Queue struct {
	base     context.Context
	cancel   context.CancelFunc
	maxRuns  int
	runDelay func(n int, err error) time.Duration

	mu     sync.Mutex
	worker optin.Worker
	active map[string]bool
	wg     sync.WaitGroup
}

var _ optin.Queue = (*Queue)(nil)

// New returns a Queue that gives up on work after maxRuns failed runs, waiting runDelay between runs
// (nil: optin.RunDelay).
func New(maxRuns int, runDelay func(n int, err error) time.Duration) *Queue {
	if runDelay == nil {
		runDelay = optin.RunDelay
	}
	base, cancel := context.WithCancel(context.Background())
	return &Queue{base: base, cancel: cancel, maxRuns: maxRuns, runDelay: runDelay, active: map[string]bool{}}
}

// Start sets the worker; work enqueued before is refused.
func (q *Queue) Start(w optin.Worker) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.worker = w
	return nil
}

// Enqueue starts the conversation's work unless it is already running here.
func (q *Queue) Enqueue(ctx context.Context, conversationSid string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.worker == nil {
		return errors.New("inproc: queue not accepting work")
	}
	if q.base.Err() != nil {
		return errors.New("inproc: queue shut down")
	}
	if q.active[conversationSid] {
		return nil
	}
	q.active[conversationSid] = true
	w := q.worker
	runCtx := zerolog.Ctx(ctx).WithContext(q.base)
	q.wg.Go(func() {
		defer func() {
			q.mu.Lock()
			delete(q.active, conversationSid)
			q.mu.Unlock()
		}()
		q.runUntilFinished(runCtx, w, conversationSid)
	})
	return nil
}

func (q *Queue) runUntilFinished(ctx context.Context, w optin.Worker, conv string) {
	log := zerolog.Ctx(ctx)
	for n := 1; ; n++ {
		err := w.Work(ctx, conv)
		if err == nil {
			return
		}
		if ctx.Err() != nil {
			log.Error().Err(err).Str("conversation_sid", conv).Msg("opt-in abandoned at shutdown")
			return
		}
		if n >= q.maxRuns {
			if err := w.GiveUp(ctx, conv, err); err != nil {
				log.Error().Err(err).Str("conversation_sid", conv).Msg("recording give-up")
			}
			return
		}
		select {
		case <-time.After(q.runDelay(n, err)):
		case <-ctx.Done():
		}
	}
}

// Depth counts the conversations being worked on or waiting for another run.
func (q *Queue) Depth() (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.active), nil
}

// Shutdown refuses new work and waits for running work until ctx ends, then abandons it.
func (q *Queue) Shutdown(ctx context.Context) error {
	q.mu.Lock()
	q.worker = nil
	q.mu.Unlock()
	done := make(chan struct{})
	go func() { q.wg.Wait(); close(done) }()
	select {
	case <-done:
		q.cancel()
		return nil
	case <-ctx.Done():
		q.cancel()
		<-done
		return fmt.Errorf("waiting for in-flight opt-ins: %w", ctx.Err())
	}
}
