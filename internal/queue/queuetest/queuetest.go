// Package queuetest is the contract every work queue must meet, run by each queue's tests, as
// storetest is for stores.
package queuetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/optinkit/optin/internal/optin"
	"github.com/optinkit/optin/internal/poll"
)

// Queue is an optin.Queue that the program starts, measures and stops.
type Queue interface {
	optin.Queue
	Start(w optin.Worker) error
	Shutdown(ctx context.Context) error
	Depth() (int, error)
}

// Run checks the contract. open returns an empty queue that runs a conversation's work at most maxRuns
// times, with short delays between runs.
func Run(t *testing.T, open func(t *testing.T, maxRuns int) Queue) {
	t.Run("runs until done", func(t *testing.T) {
		t.Parallel()
		q := open(t, 5)
		w := NewWorker(2)
		start(t, q, w)
		enqueue(t, q, "CH1")
		poll.Until(t, "three runs", func() bool { return w.Runs("CH1") == 3 })
		poll.Until(t, "an empty queue", func() bool { n, err := q.Depth(); return err == nil && n == 0 })
		// Finished work may be queued again (a late delivery); the flow then finds nothing to do.
		w.mu.Lock()
		w.fails = 0
		w.mu.Unlock()
		enqueue(t, q, "CH1")
		poll.Until(t, "a fourth run", func() bool { return w.Runs("CH1") == 4 })
		shutdown(t, q)
		if w.Runs("CH1") != 4 || w.GiveUps("CH1") != 0 {
			t.Errorf("runs %d, give-ups %d; want 4 and 0", w.Runs("CH1"), w.GiveUps("CH1"))
		}
	})

	t.Run("gives up once after its runs", func(t *testing.T) {
		t.Parallel()
		q := open(t, 2)
		w := NewWorker(1000)
		start(t, q, w)
		enqueue(t, q, "CH1")
		poll.Until(t, "a give-up", func() bool { return w.GiveUps("CH1") == 1 })
		shutdown(t, q)
		if w.Runs("CH1") != 2 || w.GiveUps("CH1") != 1 {
			t.Errorf("runs %d, give-ups %d; want 2 and 1", w.Runs("CH1"), w.GiveUps("CH1"))
		}
	})

	t.Run("a failed give-up never wedges the work", func(t *testing.T) {
		t.Parallel()
		q := open(t, 2)
		w := NewWorker(1000)
		w.giveUpFails = 2
		start(t, q, w)
		enqueue(t, q, "CH1")
		// The give-up fails twice and is tried again until it is recorded.
		poll.Until(t, "a recorded give-up", func() bool { return w.GiveUps("CH1") == 1 })
		// And the conversation can be queued again afterwards: nothing keeps its id.
		w.mu.Lock()
		w.fails = 0
		runs := w.runs["CH1"]
		w.mu.Unlock()
		enqueue(t, q, "CH1")
		poll.Until(t, "a run after the give-up", func() bool { return w.Runs("CH1") == runs+1 })
		shutdown(t, q)
		if w.giveUpCalls("CH1") != 3 {
			t.Errorf("give-up called %d times, want 3 (two failures, then recorded)", w.giveUpCalls("CH1"))
		}
	})

	t.Run("one run at a time per conversation", func(t *testing.T) {
		t.Parallel()
		q := open(t, 1)
		w := NewWorker(0)
		w.hold = make(chan struct{})
		start(t, q, w)
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Go(func() { enqueue(t, q, fmt.Sprint("CH", i%2)) })
		}
		wg.Wait()
		poll.Until(t, "both conversations running", func() bool { return w.started("CH0") && w.started("CH1") })
		close(w.hold)
		poll.Until(t, "both done", func() bool { return w.Runs("CH0") == 1 && w.Runs("CH1") == 1 })
		shutdown(t, q)
		if w.Runs("CH0") != 1 || w.Runs("CH1") != 1 || w.maxConcurrent() != 2 {
			t.Errorf("runs %d and %d, %d at once; want 1, 1, 2", w.Runs("CH0"), w.Runs("CH1"), w.maxConcurrent())
		}
	})

	t.Run("work outlives the enqueuer's context", func(t *testing.T) {
		t.Parallel()
		q := open(t, 1)
		w := NewWorker(0)
		start(t, q, w)
		ctx, cancel := context.WithCancel(t.Context())
		if err := q.Enqueue(ctx, "CH1"); err != nil {
			t.Fatal(err)
		}
		cancel()
		poll.Until(t, "the run", func() bool { return w.Runs("CH1") == 1 })
		shutdown(t, q)
	})

	t.Run("shutdown is bounded and final", func(t *testing.T) {
		t.Parallel()
		q := open(t, 1)
		w := NewWorker(0)
		w.hold = make(chan struct{})
		defer close(w.hold)
		start(t, q, w)
		enqueue(t, q, "CH1")
		poll.Until(t, "the run to start", func() bool { return w.started("CH1") })
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		if err := q.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Shutdown = %v, want the context's deadline", err)
		}
		// Even when the deadline cut it short, the queue let go of its connections and takes no work.
		if err := q.Enqueue(t.Context(), "CH2"); err == nil {
			t.Error("Enqueue after Shutdown succeeded")
		}
	})

	t.Run("shutdown before start", func(t *testing.T) {
		t.Parallel()
		q := open(t, 1)
		if err := q.Shutdown(t.Context()); err != nil {
			t.Errorf("Shutdown of an unstarted queue: %v", err)
		}
		if err := q.Enqueue(t.Context(), "CH1"); err == nil {
			t.Error("Enqueue after Shutdown succeeded")
		}
	})
}

func start(t *testing.T, q Queue, w optin.Worker) {
	t.Helper()
	if err := q.Start(w); err != nil {
		t.Fatal(err)
	}
}

func enqueue(t *testing.T, q Queue, conv string) {
	t.Helper()
	if err := q.Enqueue(t.Context(), conv); err != nil {
		t.Error(err)
	}
}

func shutdown(t *testing.T, q Queue) {
	t.Helper()
	if err := q.Shutdown(t.Context()); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// Worker is an optin.Worker for queue tests: it fails each conversation's first fails runs; with hold
// set, every run waits for it to close.
type Worker struct {
	fails int
	hold  chan struct{}
	// giveUpFails makes the first giveUpFails give-ups fail.
	giveUpFails int

	mu              sync.Mutex
	runs, gaveUp    map[string]int
	giveUpTries     map[string]int
	begun           map[string]bool
	running, maxRun int
}

// NewWorker returns a Worker that fails each conversation's first fails runs.
func NewWorker(fails int) *Worker {
	return &Worker{fails: fails, runs: map[string]int{}, gaveUp: map[string]int{}, giveUpTries: map[string]int{}, begun: map[string]bool{}}
}

func (w *Worker) Work(ctx context.Context, conv string) error {
	w.mu.Lock()
	w.begun[conv] = true
	w.running++
	w.maxRun = max(w.maxRun, w.running)
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.running--
		w.mu.Unlock()
	}()
	if w.hold != nil {
		select {
		case <-w.hold:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.runs[conv]++
	if w.runs[conv] <= w.fails {
		return errors.New("transient")
	}
	return nil
}

func (w *Worker) GiveUp(_ context.Context, conv string, _ error) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.giveUpTries[conv]++
	if w.giveUpTries[conv] <= w.giveUpFails {
		return errors.New("store unavailable while giving up")
	}
	w.gaveUp[conv]++
	return nil
}

func (w *Worker) giveUpCalls(conv string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.giveUpTries[conv]
}

// Runs counts the conversation's runs that got past hold.
func (w *Worker) Runs(conv string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.runs[conv]
}

// GiveUps counts the times the queue gave the conversation up.
func (w *Worker) GiveUps(conv string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.gaveUp[conv]
}

func (w *Worker) started(conv string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.begun[conv]
}

func (w *Worker) maxConcurrent() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.maxRun
}
