package inproc

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// worker fails its first fails runs, optionally blocking each until release is closed.
type worker struct {
	mu      sync.Mutex
	runs    map[string]int
	fails   int
	gaveUp  []string
	release chan struct{}
}

func (w *worker) Work(ctx context.Context, conv string) error {
	if w.release != nil {
		select {
		case <-w.release:
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

func (w *worker) GiveUp(_ context.Context, conv string, _ error) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.gaveUp = append(w.gaveUp, conv)
	return nil
}

func newQueue(maxRuns int) *Queue {
	q := New(maxRuns)
	q.runDelay = func(int, error) time.Duration { return time.Millisecond }
	return q
}

func TestRetriesUntilDone(t *testing.T) {
	q := newQueue(5)
	w := &worker{runs: map[string]int{}, fails: 2}
	_ = q.Start(w)
	if err := q.Enqueue(t.Context(), "CH1"); err != nil {
		t.Fatal(err)
	}
	if err := q.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if w.runs["CH1"] != 3 || len(w.gaveUp) != 0 {
		t.Errorf("runs = %d, gave up %v", w.runs["CH1"], w.gaveUp)
	}
}

func TestGivesUpAfterMaxRuns(t *testing.T) {
	q := newQueue(3)
	w := &worker{runs: map[string]int{}, fails: 100}
	_ = q.Start(w)
	_ = q.Enqueue(t.Context(), "CH1")
	_ = q.Shutdown(t.Context())
	if w.runs["CH1"] != 3 || len(w.gaveUp) != 1 {
		t.Errorf("runs = %d, gave up %v", w.runs["CH1"], w.gaveUp)
	}
}

func TestOneRunAtATimePerConversation(t *testing.T) {
	q := newQueue(1)
	w := &worker{runs: map[string]int{}, release: make(chan struct{})}
	_ = q.Start(w)
	for range 10 {
		_ = q.Enqueue(t.Context(), "CH1")
		_ = q.Enqueue(t.Context(), "CH2")
	}
	close(w.release)
	_ = q.Shutdown(t.Context())
	if w.runs["CH1"] != 1 || w.runs["CH2"] != 1 {
		t.Errorf("runs = %v", w.runs)
	}
	if err := q.Enqueue(t.Context(), "CH3"); err == nil {
		t.Error("enqueue after shutdown accepted")
	}
}

func TestShutdownTimeoutAbandons(t *testing.T) {
	q := newQueue(1)
	w := &worker{runs: map[string]int{}, release: make(chan struct{})}
	_ = q.Start(w)
	_ = q.Enqueue(t.Context(), "CH1")
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if err := q.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v", err)
	}
	if w.runs["CH1"] != 0 || len(w.gaveUp) != 0 {
		t.Errorf("abandoned work ran or was given up: %v %v", w.runs, w.gaveUp)
	}
}

func TestNotStarted(t *testing.T) {
	if err := New(1).Enqueue(t.Context(), "CH1"); err == nil {
		t.Error("enqueue before Start accepted")
	}
}
