package asynqueue

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/optinkit/optin/internal/redistest"
)

// worker fails each conversation's first fails runs and records every call.
type worker struct {
	mu     sync.Mutex
	fails  int
	runs   map[string]int
	by     map[string]string
	gaveUp map[string]int
	name   string
}

func newWorker(name string, fails int) *worker {
	return &worker{name: name, fails: fails, runs: map[string]int{}, by: map[string]string{}, gaveUp: map[string]int{}}
}

func (w *worker) Work(_ context.Context, conv string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.runs[conv]++
	w.by[conv] = w.name
	if w.runs[conv] <= w.fails {
		return errors.New("transient")
	}
	return nil
}

func (w *worker) GiveUp(_ context.Context, conv string, _ error) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.gaveUp[conv]++
	return nil
}

func (w *worker) count(conv string) (int, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.runs[conv], w.gaveUp[conv]
}

func open(t *testing.T, url string, maxRetry int) *Queue {
	t.Helper()
	q, err := Open(url, Options{Concurrency: 4, MaxRetry: maxRetry, ShutdownTimeout: 2 * time.Second, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Two replicas share one Redis: every conversation, enqueued many times from both, runs exactly once.
func TestEachConversationRunsOnceAcrossReplicas(t *testing.T) {
	srv := redistest.Start(t)
	a, b := open(t, srv.URL(), 3), open(t, srv.URL(), 3)
	wa, wb := newWorker("a", 0), newWorker("b", 0)
	var wg sync.WaitGroup
	for i := range 40 {
		for _, q := range []*Queue{a, b, a} {
			wg.Go(func() {
				if err := q.Enqueue(t.Context(), fmt.Sprintf("CH%02d", i)); err != nil {
					t.Error(err)
				}
			})
		}
	}
	wg.Wait()
	if err := a.Start(wa); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(wb); err != nil {
		t.Fatal(err)
	}
	total := func() (n int) {
		for i := range 40 {
			ra, _ := wa.count(fmt.Sprintf("CH%02d", i))
			rb, _ := wb.count(fmt.Sprintf("CH%02d", i))
			n += ra + rb
		}
		return n
	}
	waitUntil(t, "40 runs", func() bool { return total() >= 40 })
	_ = a.Shutdown(t.Context())
	_ = b.Shutdown(t.Context())
	for i := range 40 {
		conv := fmt.Sprintf("CH%02d", i)
		ra, _ := wa.count(conv)
		rb, _ := wb.count(conv)
		if ra+rb != 1 {
			t.Errorf("%s ran %d times", conv, ra+rb)
		}
	}
	ra, rb := len(wa.runs), len(wb.runs)
	t.Logf("replica a ran %d conversations, replica b %d", ra, rb)
}

func TestTransientFailuresAreRetriedThenGivenUp(t *testing.T) {
	srv := redistest.Start(t)
	q := open(t, srv.URL(), 1)
	w := newWorker("a", 1)
	if err := q.Start(w); err != nil {
		t.Fatal(err)
	}
	defer q.Shutdown(t.Context())
	_ = q.Enqueue(t.Context(), "CH-ok")
	waitUntil(t, "a retried run", func() bool { n, _ := w.count("CH-ok"); return n == 2 })

	w.mu.Lock()
	w.fails = 100
	w.mu.Unlock()
	_ = q.Enqueue(t.Context(), "CH-bad")
	waitUntil(t, "give-up", func() bool { _, g := w.count("CH-bad"); return g == 1 })
	if n, _ := w.count("CH-bad"); n != 2 {
		t.Errorf("CH-bad ran %d times, want 2 (MaxRetry 1)", n)
	}
	// A finished conversation may be queued again (its task is gone); the flow itself then has nothing to do.
	if err := q.Enqueue(t.Context(), "CH-ok"); err != nil {
		t.Errorf("re-enqueue after completion: %v", err)
	}
}

func TestDepthCountsWaitingWork(t *testing.T) {
	srv := redistest.Start(t)
	q := open(t, srv.URL(), 1)
	if n, err := q.Depth(); err != nil || n != 0 {
		t.Errorf("empty depth = %d %v", n, err)
	}
	for _, conv := range []string{"CH1", "CH2", "CH2", "CH3"} {
		_ = q.Enqueue(t.Context(), conv)
	}
	if n, err := q.Depth(); err != nil || n != 3 {
		t.Errorf("depth = %d %v, want 3", n, err)
	}
	_ = q.Shutdown(t.Context())
}

// blocker holds every run until release is closed.
type blocker struct{ release, started chan struct{} }

func (b blocker) Work(ctx context.Context, _ string) error {
	close(b.started)
	<-b.release
	return nil
}

func (blocker) GiveUp(context.Context, string, error) error { return nil }

func TestShutdownIsBoundedByItsContext(t *testing.T) {
	srv := redistest.Start(t)
	q, err := Open(srv.URL(), Options{Concurrency: 1, ShutdownTimeout: time.Minute, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	b := blocker{release: make(chan struct{}), started: make(chan struct{})}
	defer close(b.release)
	if err := q.Start(b); err != nil {
		t.Fatal(err)
	}
	_ = q.Enqueue(t.Context(), "CH1")
	<-b.started
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if err := q.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want the context's deadline", err)
	}
}

func TestEnqueueFailsWithoutRedis(t *testing.T) {
	srv := redistest.Start(t)
	q := open(t, srv.URL(), 1)
	if err := q.Ping(); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	if err := q.Enqueue(ctx, "CH1"); err == nil {
		t.Error("enqueue succeeded with Redis down")
	}
	if err := q.Ping(); err == nil {
		t.Error("ping succeeded with Redis down")
	}
}
