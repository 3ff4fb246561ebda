package chat

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/optinkit/optin/internal/poll"
	"github.com/optinkit/optin/internal/twiliocall"
)

// A reconcile that takes long (thousands of open chats at a paced rate; here one that blocks on
// Twilio) does not hold up the outbox: events are still handed over (issue 24, defect 9).
func TestOutboxSweepsWhileReconcileRuns(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.notes.mu.Lock()
	e.notes.fail = errors.New("queue down")
	e.notes.mu.Unlock()
	if _, _, err := e.svc.Start(ctx, request("order-1")); err != nil {
		t.Fatal(err)
	}
	e.clock.advance(time.Minute) // the event is past its grace
	e.svc.cfg.ReconcileInterval = 20 * time.Millisecond
	blocked := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	e.tw.before = func(op, _ string) error {
		if op == "fetch" {
			once.Do(func() { close(blocked) })
			<-release
		}
		return nil
	}
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); e.svc.Maintain(mctx) }()
	defer func() { cancel(); close(release); <-done }()
	<-blocked
	e.notes.mu.Lock()
	e.notes.fail = nil
	e.notes.mu.Unlock()
	// The store's clock moves on with the tickers, so that each sweep's mark lapses and the next runs.
	poll.Until(t, "the outbox sweep during a reconcile", func() bool {
		e.clock.advance(time.Millisecond)
		return e.notes.count() > 0
	})
}

// A refused hand-over of one chat's event does not stop the sweep: the other chats' events go
// (issue 24, defect 10).
func TestSweepGoesOnPastARefusedEvent(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, id := range []string{"order-1", "order-2"} {
		if _, _, err := e.svc.Start(ctx, request(id)); err != nil {
			t.Fatal(err)
		}
	}
	e.clock.advance(time.Minute)
	e.svc.cfg.Notifier = refusing{of: "order-1", next: e.notes}
	before := e.notes.count()
	n, err := e.svc.SweepOutbox(ctx)
	if err == nil || n != 1 || e.notes.count() != before+1 {
		t.Errorf("sweep handed %d (notifier got %d), err %v; want order-2's event handed and order-1's error", n, e.notes.count()-before, err)
	}
}

// refusing refuses the events of one chat and hands the others on.
type refusing struct {
	of   string
	next Notifier
}

func (r refusing) Notify(ctx context.Context, chatID, eventID string) error {
	if chatID == r.of {
		return errors.New("refused")
	}
	return r.next.Notify(ctx, chatID, eventID)
}

// A reconcile run whose lease is taken over (another replica, after a pause here) stops.
func TestUpkeepStopsWhenItsLeaseIsLost(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan context.Context, 1)
	jobDone := make(chan struct{})
	go e.svc.every(ctx, "~test", 30*time.Millisecond, func(jctx context.Context) {
		select {
		case ran <- jctx:
		default:
		}
		<-jctx.Done()
		close(jobDone)
	})
	var jctx context.Context
	select {
	case jctx = <-ran:
	case <-time.After(5 * time.Second):
		t.Fatal("the job never ran")
	}
	// Another owner takes the lease (as after a lapse): the holder's next renewal finds it taken.
	e.store.mu.Lock()
	e.store.locks["~test"] = fakeLease{owner: "other", until: e.clock.now().Add(time.Hour)}
	e.store.mu.Unlock()
	select {
	case <-jobDone:
	case <-time.After(5 * time.Second):
		t.Fatal("the job ran on after its lease was taken")
	}
	if jctx.Err() == nil {
		t.Error("the job's context is not cancelled")
	}
}

// queueOf is a WorkQueue that records what was queued.
type queueOf struct {
	mu  sync.Mutex
	ids []string
}

func (q *queueOf) Enqueue(_ context.Context, id string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.ids = append(q.ids, id)
	return nil
}

// With a work queue, recorded work is queued, not run in a goroutine; the queue's worker does it, and
// parks it (recorded, counted) when its runs all failed; a later run that succeeds clears the mark.
func TestChatWorkIsQueuedAndParked(t *testing.T) {
	r := newRelayEnv(t)
	c, _ := r.connected("order-1")
	q := &queueOf{}
	r.svc.cfg.Work = q
	m := r.write(c, customer, "gate code 4411")
	r.failed(c, m)
	if len(q.ids) != 1 || q.ids[0] != "order-1" {
		t.Fatalf("queued %v, want the chat", q.ids)
	}
	w := r.svc.Worker()
	ctx := context.Background()
	r.tw.before = func(op, _ string) error {
		if op == "fetch_message" {
			return callErr("fetch message", twiliocall.Retryable, 503, 20503)
		}
		return nil
	}
	if err := w.Work(ctx, "order-1"); err == nil {
		t.Fatal("a run whose Twilio calls failed reported success")
	}
	if err := w.GiveUp(ctx, "order-1", errors.New("twilio 503 for whatsapp:+15550001111")); err != nil {
		t.Fatal(err)
	}
	got := r.chat("order-1")
	if got.Parked == nil || strings.Contains(got.Parked.Reason, "15550001111") || r.obs.parked != 1 {
		t.Fatalf("parked %+v (counted %d), want recorded without the number", got.Parked, r.obs.parked)
	}
	if v := got.View(); v.Parked == nil || v.Parked.Reason != got.Parked.Reason || !v.Parked.At.Equal(got.Parked.At) {
		t.Errorf("the chat's view shows parked %+v", v.Parked)
	}
	r.tw.before = nil
	if err := w.Work(ctx, "order-1"); err != nil {
		t.Fatal(err)
	}
	if got := r.chat("order-1"); got.Parked != nil || len(got.Rider.Held) != 1 {
		t.Errorf("after a run that succeeded: parked %+v, held %d", got.Parked, len(got.Rider.Held))
	}
}

// The reconcile runs in shards that partition the open chats: each chat's conversation is read once
// per pass of all the shards, and the shards together keep to the rate.
func TestReconcileShardsPartitionTheChats(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var convs []string
	for i := range 24 {
		c, _, err := e.svc.Start(ctx, request(fmt.Sprintf("order-%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		convs = append(convs, c.ConversationSid)
	}
	e.clock.advance(time.Minute)
	var mu sync.Mutex
	reads := map[string]int{}
	e.tw.before = func(op, conv string) error {
		if op == "fetch" {
			mu.Lock()
			reads[conv]++
			mu.Unlock()
		}
		return nil
	}
	e.svc.cfg.ReconcileRate = 1e9
	checked, sizes := 0, map[int]int{}
	for shard := range 4 {
		rep, err := e.svc.ReconcileShard(ctx, shard, 4)
		if err != nil {
			t.Fatal(err)
		}
		checked += rep.Checked
		sizes[shard] = rep.Checked
	}
	if checked != len(convs) {
		t.Errorf("the shards checked %d chats, want %d (%v)", checked, len(convs), sizes)
	}
	for _, conv := range convs {
		if reads[conv] != 1 {
			t.Errorf("conversation %s read %d times in one pass", conv, reads[conv])
		}
	}
}

// A shard whose lease another replica holds (and does not run: it died) stalls only its own chats:
// Maintain reconciles every other shard's.
func TestAStalledShardStallsOnlyItsChats(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	conv := map[string]string{}
	for i := range 16 {
		id := fmt.Sprintf("order-%d", i)
		c, _, err := e.svc.Start(ctx, request(id))
		if err != nil {
			t.Fatal(err)
		}
		conv[c.ConversationSid] = id
	}
	e.clock.advance(time.Minute)
	shards := DefaultReconcileShards
	if ok, err := e.store.Lock(ctx, fmt.Sprintf("%s:%d/%d", reconcileLease, 0, shards), "a replica that died", time.Hour); err != nil || !ok {
		t.Fatal(ok, err)
	}
	var mu sync.Mutex
	read := map[string]bool{}
	e.tw.before = func(op, c string) error {
		if op == "fetch" {
			mu.Lock()
			read[conv[c]] = true
			mu.Unlock()
		}
		return nil
	}
	e.svc.cfg.ReconcileInterval, e.svc.cfg.ReconcileRate = 10*time.Millisecond, 1e9
	var stalled, others []string
	for _, id := range conv {
		if ShardOf(id, shards) == 0 {
			stalled = append(stalled, id)
		} else {
			others = append(others, id)
		}
	}
	if len(stalled) == 0 || len(others) == 0 {
		t.Fatalf("shards of the test chats: %d in shard 0, %d elsewhere", len(stalled), len(others))
	}
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); e.svc.Maintain(mctx) }()
	defer func() { cancel(); <-done }()
	poll.Until(t, "the other shards' chats reconciled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, id := range others {
			if !read[id] {
				return false
			}
		}
		return true
	})
	mu.Lock()
	defer mu.Unlock()
	for _, id := range stalled {
		if read[id] {
			t.Errorf("chat %s of the stalled shard was reconciled", id)
		}
	}
}

// Two replicas share the reconcile's shards: each ticks at its own phase, a run is marked done for
// most of an interval fleet-wide, and the lease is given back after it — neither keeps every shard.
func TestReplicasShareTheShards(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, _, err := e.svc.Start(ctx, request("order-1")); err != nil {
		t.Fatal(err)
	}
	cfg := e.svc.cfg
	// 16 shards: each goes to whichever replica's phase comes first, so both get some but with odds of
	// 2 in 65,536.
	cfg.ReconcileInterval, cfg.ReconcileRate, cfg.ReconcileShards = 20*time.Millisecond, 1e9, 16
	var logs [2]*syncBuffer
	mctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := range 2 {
		svc, err := NewService(e.tw, e.store, cfg)
		if err != nil {
			t.Fatal(err)
		}
		svc.now = e.clock.now
		workAsync(svc)
		logs[i] = &syncBuffer{}
		lctx := zerolog.New(logs[i]).WithContext(mctx)
		wg.Go(func() { svc.Maintain(lctx) })
	}
	defer func() { cancel(); wg.Wait() }()
	// The store's clock keeps time with the tickers: a run's mark lapses within an interval, a lease
	// only after two — one kept by its holder would never pass to the other replica.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(cfg.ReconcileInterval):
				e.clock.advance(cfg.ReconcileInterval)
			}
		}
	}()
	runs := func(i int) int { return strings.Count(logs[i].String(), "chats reconciled") }
	poll.Until(t, "both replicas reconciling shards", func() bool { return runs(0) >= 3 && runs(1) >= 3 })
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A run gives its lease back when it ends: the next is whoever ticks first once the run's mark lapses,
// not the replica that happened to start first, keeping the job for as long as it lives.
func TestUpkeepGivesItsLeaseBackAfterARun(t *testing.T) {
	e := newEnv(t)
	cfg := e.svc.cfg
	cfg.ReconcileInterval, cfg.ReconcileShards = 10*time.Millisecond, 1
	svc, err := NewService(e.tw, e.store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	svc.now = e.clock.now
	workAsync(svc)
	log := &syncBuffer{}
	mctx, cancel := context.WithCancel(zerolog.New(log).WithContext(context.Background()))
	done := make(chan struct{})
	go func() { defer close(done); svc.Maintain(mctx) }()
	defer func() { cancel(); <-done }()
	name := reconcileLease + ":0/1"
	poll.Until(t, "a reconcile run, its lease given back", func() bool {
		e.store.mu.Lock()
		_, held := e.store.locks[name]
		e.store.mu.Unlock()
		return strings.Contains(log.String(), "chats reconciled") && !held
	})
	e.store.mu.Lock()
	_, marked := e.store.locks[name+":ran"]
	e.store.mu.Unlock()
	if !marked {
		t.Error("the run was not marked done for the interval")
	}
}
