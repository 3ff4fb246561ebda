package asynqueue

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/optinkit/optin/internal/poll"
	"github.com/optinkit/optin/internal/queue/queuetest"
	"github.com/optinkit/optin/internal/redistest"
)

func open(t *testing.T, url string, maxRetry int) *Queue {
	t.Helper()
	q, err := Open(url, Options{Concurrency: 4, MaxRetry: maxRetry, ShutdownTimeout: 2 * time.Second, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// Two replicas share one Redis: every conversation, enqueued many times from both, runs exactly once.
func TestEachConversationRunsOnceAcrossReplicas(t *testing.T) {
	srv := redistest.Start(t)
	a, b := open(t, srv.URL(), 3), open(t, srv.URL(), 3)
	wa, wb := queuetest.NewWorker(0), queuetest.NewWorker(0)
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
			ra := wa.Runs(fmt.Sprintf("CH%02d", i))
			rb := wb.Runs(fmt.Sprintf("CH%02d", i))
			n += ra + rb
		}
		return n
	}
	poll.Until(t, "40 runs", func() bool { return total() >= 40 })
	_ = a.Shutdown(t.Context())
	_ = b.Shutdown(t.Context())
	byA, byB := 0, 0
	for i := range 40 {
		conv := fmt.Sprintf("CH%02d", i)
		ra, rb := wa.Runs(conv), wb.Runs(conv)
		if ra+rb != 1 {
			t.Errorf("%s ran %d times", conv, ra+rb)
		}
		byA, byB = byA+ra, byB+rb
	}
	t.Logf("replica a ran %d conversations, replica b %d", byA, byB)
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

// Each subtest gets its own redis-server.
func TestContract(t *testing.T) {
	queuetest.Run(t, func(t *testing.T, maxRuns int) queuetest.Queue {
		q, err := Open(redistest.Start(t).URL(), Options{Concurrency: 4, MaxRetry: max(maxRuns-1, 1), ShutdownTimeout: 5 * time.Second,
			Log: zerolog.Nop(), RunDelay: func(int, error) time.Duration { return time.Millisecond }})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = q.Shutdown(context.Background()) })
		return q
	})
}

func TestEnqueueFailsWithoutRedis(t *testing.T) {
	srv := redistest.Start(t)
	q := open(t, srv.URL(), 1)
	if err := q.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	if err := q.Enqueue(ctx, "CH1"); err == nil {
		t.Error("enqueue succeeded with Redis down")
	}
	if err := q.Ping(t.Context()); err == nil {
		t.Error("ping succeeded with Redis down")
	}
}

func TestSplitWorkers(t *testing.T) {
	for concurrency, want := range map[int][]int{
		1: {1}, 10: {10}, 199: {199}, 200: {100, 100}, 250: {125, 125}, 1000: {125, 125, 125, 125, 125, 125, 125, 125}, 301: {101, 100, 100},
	} {
		if got := split(concurrency); !slices.Equal(got, want) {
			t.Errorf("split(%d) = %v, want %v", concurrency, got, want)
		}
	}
}

// A task asynq archived (a give-up that could not even be queued again) does not hold the
// conversation's id for ever: the next enqueue deletes it and the work runs.
func TestArchivedTaskIsRevived(t *testing.T) {
	srv := redistest.Start(t)
	q := open(t, srv.URL(), 3)
	if err := q.Enqueue(t.Context(), "CH1"); err != nil {
		t.Fatal(err)
	}
	if err := q.inspector.ArchiveTask(q.queueName, "CH1"); err != nil {
		t.Fatal(err)
	}
	if err := q.Enqueue(t.Context(), "CH1"); err != nil {
		t.Fatalf("enqueue over an archived task: %v", err)
	}
	info, err := q.inspector.GetTaskInfo(q.queueName, "CH1")
	if err != nil || info.State.String() != "pending" {
		t.Fatalf("task after the enqueue: %+v %v", info, err)
	}
	w := queuetest.NewWorker(0)
	if err := q.Start(w); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.Shutdown(context.Background()) })
	poll.Until(t, "the revived run", func() bool { return w.Runs("CH1") == 1 })
}

// gate is a worker whose first run waits until released; it counts runs per key.
type gate struct {
	mu      sync.Mutex
	runs    map[string]int
	started chan struct{}
	release chan struct{}
}

func (g *gate) Work(_ context.Context, key string) error {
	g.mu.Lock()
	g.runs[key]++
	first := g.runs[key] == 1
	g.mu.Unlock()
	if first {
		close(g.started)
		<-g.release
	}
	return nil
}

func (g *gate) GiveUp(context.Context, string, error) error { return nil }

func (g *gate) count(key string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.runs[key]
}

// With Rerun, work enqueued (many times) while its key runs runs once more after that run: the worker
// sees what was recorded until its very end.
func TestRerunOnEnqueue(t *testing.T) {
	srv := redistest.Start(t)
	q, err := Open(srv.URL(), Options{Name: "chatwork", Concurrency: 2, MaxRetry: 2, ShutdownTimeout: 2 * time.Second, Log: zerolog.Nop(), Rerun: true})
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{runs: map[string]int{}, started: make(chan struct{}), release: make(chan struct{})}
	if err := q.Start(g); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.Shutdown(context.Background()) })
	if err := q.Enqueue(t.Context(), "chat-1"); err != nil {
		t.Fatal(err)
	}
	<-g.started
	for range 3 {
		if err := q.Enqueue(t.Context(), "chat-1"); err != nil {
			t.Fatal(err)
		}
	}
	close(g.release)
	poll.Until(t, "the run after the enqueues", func() bool { return g.count("chat-1") >= 2 })
	// One follow-up per second: the three enqueues make one, or two when a second turned among them.
	if n := g.count("chat-1"); n > 3 {
		t.Errorf("%d runs, want the first and one more per second of enqueues", n)
	}
}
