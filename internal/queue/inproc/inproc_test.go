package inproc

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/optinkit/optin/internal/poll"
	"github.com/optinkit/optin/internal/queue/queuetest"
)

func newQueue(maxRuns int) *Queue {
	return New(4, maxRuns, func(int, error) time.Duration { return time.Millisecond })
}

func TestContract(t *testing.T) {
	queuetest.Run(t, func(t *testing.T, maxRuns int) queuetest.Queue { return newQueue(maxRuns) })
}

func TestNotStarted(t *testing.T) {
	if err := New(1, 1, nil).Enqueue(t.Context(), "CH1"); err == nil {
		t.Error("enqueue before Start accepted")
	}
}

// blocker is a worker whose runs wait until released, counting how many run at once.
type blocker struct {
	mu            sync.Mutex
	running, peak int
	done          map[string]int
	release       chan struct{}
	fail          map[string]bool
}

func (b *blocker) Work(ctx context.Context, conv string) error {
	b.mu.Lock()
	b.running++
	b.peak = max(b.peak, b.running)
	fail := b.fail[conv]
	b.mu.Unlock()
	if !fail {
		select {
		case <-b.release:
		case <-ctx.Done():
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.running--
	if fail {
		return errors.New("twilio is down")
	}
	b.done[conv]++
	return nil
}

func (b *blocker) GiveUp(context.Context, string, error) error { return nil }

func TestWorkersBoundRunsAndRetriesWaitOffThem(t *testing.T) {
	b := &blocker{done: map[string]int{}, release: make(chan struct{}), fail: map[string]bool{"CHfails": true}}
	// A failed run waits an hour for its next: it must not keep its worker meanwhile.
	q := New(2, 3, func(int, error) time.Duration { return time.Hour })
	if err := q.Start(b); err != nil {
		t.Fatal(err)
	}
	if err := q.Enqueue(t.Context(), "CHfails"); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := q.Enqueue(t.Context(), fmt.Sprintf("CH%02d", i)); err != nil {
			t.Fatal(err)
		}
	}
	poll.Until(t, "two runs", func() bool { b.mu.Lock(); defer b.mu.Unlock(); return b.running == 2 })
	if n, _ := q.Depth(); n != 11 {
		t.Errorf("depth %d, want 11 (10 queued or running, 1 waiting to run again)", n)
	}
	for range 10 {
		b.release <- struct{}{}
	}
	poll.Until(t, "ten opt-ins done", func() bool { b.mu.Lock(); defer b.mu.Unlock(); return len(b.done) == 10 })
	b.mu.Lock()
	peak := b.peak
	b.mu.Unlock()
	if peak != 2 {
		t.Errorf("%d runs at once, want 2", peak)
	}
	// A run leaves the depth once its Work has returned, a moment after it counted itself done.
	poll.Until(t, "depth 1 after the ten (the failed one waiting)", func() bool { n, _ := q.Depth(); return n == 1 })
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	if err := q.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := q.Depth(); n != 0 {
		t.Errorf("depth %d after shutdown", n)
	}
}

// Shutdown refuses new work but lets what is queued run, within its deadline.
func TestShutdownDrainsTheQueue(t *testing.T) {
	b := &blocker{done: map[string]int{}, release: make(chan struct{}), fail: map[string]bool{}}
	q := New(1, 3, nil)
	if err := q.Start(b); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := q.Enqueue(t.Context(), fmt.Sprintf("CH%02d", i)); err != nil {
			t.Fatal(err)
		}
	}
	poll.Until(t, "the first run", func() bool { b.mu.Lock(); defer b.mu.Unlock(); return b.running == 1 })
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		stopped <- q.Shutdown(ctx)
	}()
	poll.Until(t, "shutdown to begin", func() bool { q.mu.Lock(); defer q.mu.Unlock(); return q.closing })
	if err := q.Enqueue(t.Context(), "CHlate"); err == nil {
		t.Error("work enqueued during shutdown")
	}
	for range 3 {
		b.release <- struct{}{}
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.done) != 3 || b.done["CHlate"] != 0 {
		t.Errorf("done %v: want the three queued before shutdown, not the late one", b.done)
	}
}

// With RerunOnEnqueue, work enqueued while its key runs runs once more when that run ends (however
// many enqueues came meanwhile); without it, such an enqueue is dropped (the opt-in's flow reads all
// it needs each run).
func TestRerunOnEnqueue(t *testing.T) {
	for _, rerun := range []bool{true, false} {
		q := newQueue(3)
		if rerun {
			q.RerunOnEnqueue()
		}
		b := &blocker{done: map[string]int{}, release: make(chan struct{}), fail: map[string]bool{}}
		if err := q.Start(b); err != nil {
			t.Fatal(err)
		}
		if err := q.Enqueue(t.Context(), "chat-1"); err != nil {
			t.Fatal(err)
		}
		waitRunning(t, b, 1)
		for range 3 {
			if err := q.Enqueue(t.Context(), "chat-1"); err != nil {
				t.Fatal(err)
			}
		}
		b.release <- struct{}{}
		want := 1
		if rerun {
			want = 2
			waitRunning(t, b, 1)
			b.release <- struct{}{}
		}
		if err := q.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
		b.mu.Lock()
		got := b.done["chat-1"]
		b.mu.Unlock()
		if got != want {
			t.Errorf("rerun %v: %d runs, want %d", rerun, got, want)
		}
	}
}

// waitRunning polls until n runs are under way.
func waitRunning(t *testing.T, b *blocker, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b.mu.Lock()
		r := b.running
		b.mu.Unlock()
		if r == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d runs under way, want %d", r, n)
		}
		time.Sleep(time.Millisecond)
	}
}
