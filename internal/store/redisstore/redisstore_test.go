package redisstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/optinkit/optin/internal/chat"
	"github.com/optinkit/optin/internal/numberpool"
	"github.com/optinkit/optin/internal/optin"
	"github.com/optinkit/optin/internal/poll"
	"github.com/optinkit/optin/internal/redistest"
	"github.com/optinkit/optin/internal/store/storetest"
	"github.com/redis/go-redis/v9"
)

func open(t testing.TB, srv *redistest.Server) *Store {
	t.Helper()
	return openFor(t, srv, time.Hour)
}

// openFor opens a store whose finished records and leases live for retention.
func openFor(t testing.TB, srv *redistest.Server, retention time.Duration) *Store {
	t.Helper()
	s, err := Open(srv.URL(), retention)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s
}

// Each subtest gets its own redis-server; two Stores on it are two replicas.
func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) (optin.Store, optin.Store) {
		srv := redistest.Start(t)
		return open(t, srv), open(t, srv)
	})
}

func TestFinishedFlowsExpire(t *testing.T) {
	s := open(t, redistest.Start(t))
	ctx := t.Context()
	_, _, _ = s.Claim(ctx, optin.Flow{ConversationSid: "CH1", State: optin.StateRunning})
	if ttl := s.rdb.PTTL(ctx, s.key("CH1")).Val(); ttl != -1 {
		t.Errorf("a running flow has TTL %v, want none", ttl)
	}
	if err := s.Finish(ctx, "CH1", optin.StateDone, ""); err != nil {
		t.Fatal(err)
	}
	if ttl := s.rdb.PTTL(ctx, s.key("CH1")).Val(); ttl <= 0 || ttl > time.Hour {
		t.Errorf("finished flow TTL %v, want within an hour", ttl)
	}
	if f, err := s.Flow(ctx, "CH1"); err != nil || f.State != optin.StateDone {
		t.Errorf("flow: %+v %v", f, err)
	}
}

// With append-only persistence a claim survives a Redis crash.
func TestClaimSurvivesRestart(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, srv)
	if _, claimed, err := s.Claim(t.Context(), optin.Flow{ConversationSid: "CH1", Customer: "c", Trigger: "IM1", State: optin.StateRunning}); !claimed || err != nil {
		t.Fatal(claimed, err)
	}
	srv.Restart(0)
	f, err := s.Flow(t.Context(), "CH1")
	if err != nil || f.Trigger != "IM1" {
		t.Errorf("after restart: %+v %v", f, err)
	}
	srv.Kill()
	if err := s.Ping(t.Context()); err == nil {
		t.Error("ping succeeded with Redis down")
	}
	if _, _, err := s.Claim(t.Context(), optin.Flow{ConversationSid: "CH9"}); err == nil {
		t.Error("claim succeeded with Redis down")
	}
}

func TestOpenRejectsBadURL(t *testing.T) {
	if _, err := Open("http://127.0.0.1:6379", time.Hour); err == nil {
		t.Error("accepted a non-redis url")
	}
}

func TestChatsContract(t *testing.T) {
	storetest.RunChats(t, func(t *testing.T) (chat.Store, chat.Store) {
		srv := redistest.Start(t)
		return open(t, srv).Chats(), open(t, srv).Chats()
	})
}

func TestPairsContract(t *testing.T) {
	storetest.RunPairs(t, func(t *testing.T, retention time.Duration) (numberpool.Store, numberpool.Store) {
		srv := redistest.Start(t)
		return openFor(t, srv, retention).Pairs(), openFor(t, srv, retention).Pairs()
	})
}

// Two replicas share one bucket: together they get no more than its rate.
func TestLimiterIsShared(t *testing.T) {
	srv := redistest.Start(t)
	limiterShared(t, open(t, srv).Limiter("test", 10, 2), open(t, srv).Limiter("test", 10, 2))
}

// A finished flow keeps only what answers a later delivery (target: ≤ 300 bytes of Redis memory).
func BenchmarkFinishedFlowRedisMemory(b *testing.B) {
	for b.Loop() {
		n := finishedFlowSize(b)
		b.ReportMetric(float64(n), "B/finished-flow")
	}
}

// A finished flow answers later deliveries from what it keeps: customer, trigger, state.
func TestFinishedFlowIsCompact(t *testing.T) {
	finishedFlowSize(t)
}

func finishedFlowSize(t testing.TB) int64 {
	s := open(t, redistest.Start(t))
	ctx := t.Context()
	conv := "CH0123456789abcdef0123456789abcdef"
	f := optin.Flow{ConversationSid: conv, Customer: "whatsapp:+15550001111", Trigger: "IM0123456789abcdef0123456789abcdef",
		State: optin.StateRunning, StartedAt: time.Now(), Answer: optin.AnswerConsent, Chat: true}
	if _, _, err := s.Claim(ctx, f); err != nil {
		t.Fatal(err)
	}
	// A run cut off in its last phase leaves step records behind: the flow's end drops them.
	_ = s.StepsDone(ctx, conv, map[string]string{optin.StepWait: "IM0123456789abcdef0123456789abcdef", optin.StepRider: "IM0123456789abcdef0123456789abcdef", optin.StepWebhooks: "done"})
	if err := s.Finish(ctx, conv, optin.StateDone, ""); err != nil {
		t.Fatal(err)
	}
	n, err := s.rdb.MemoryUsage(ctx, s.key(conv)).Result()
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Flow(ctx, conv)
	if err != nil || got.Customer != f.Customer || got.Trigger != f.Trigger || got.State != optin.StateDone || got.FinishedAt.IsZero() || len(got.Steps) != 0 {
		t.Errorf("finished flow %+v %v", got, err)
	}
	return n
}

// BenchmarkFinishedChatRedisMemory reports what a finished chat keeps in Redis for the retention: its
// value and its conversation index (target: ≤ 600 B).
func BenchmarkFinishedChatRedisMemory(b *testing.B) {
	for b.Loop() {
		value, index := finishedChatSize(b)
		b.ReportMetric(float64(value+index), "B/finished-chat")
	}
}

// BenchmarkFinishedChatRedisIndexes reports what the listing index and the sorted set of ends keep per
// finished chat for the retention, over 1,000 chats (MEMORY USAGE of both sorted sets, divided).
func BenchmarkFinishedChatRedisIndexes(b *testing.B) {
	const chats = 1_000
	for b.Loop() {
		s := open(b, redistest.Start(b)).Chats()
		ctx := b.Context()
		for i := range chats {
			c := storetest.FinishedChat(i)
			open := c
			open.State, open.Reason, open.History = chat.StateStarting, "", c.History[:1]
			created, _, err := s.Create(ctx, open)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := s.Update(ctx, c.ID, func(stored *chat.Chat) error { *stored = c; stored.Seq = created.Seq; return nil }); err != nil {
				b.Fatal(err)
			}
		}
		var total int64
		for _, set := range []string{setIndex, setEnds} {
			var n int64
			for bucket := range chatBuckets {
				m, err := s.rdb.MemoryUsage(ctx, bucketKey(bucket, set), 0).Result()
				if err != nil {
					b.Fatal(err)
				}
				n += m
			}
			b.ReportMetric(float64(n)/chats, "B/"+set+"-member")
			total += n
		}
		b.ReportMetric(float64(total)/chats, "B/finished-chat-indexes")
	}
}

// A finished chat is kept compact, and reads back as it was: its View and what a repeated start needs.
func TestFinishedChatIsCompact(t *testing.T) {
	finishedChatSize(t)
}

func finishedChatSize(t testing.TB) (value, index int64) {
	s := open(t, redistest.Start(t)).Chats()
	ctx := t.Context()
	c := storetest.FinishedChat(7)
	open := c
	open.State, open.Reason, open.History = chat.StateStarting, "", c.History[:1]
	created, _, err := s.Create(ctx, open)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctx, c.ID, func(stored *chat.Chat) error { *stored = c; stored.Seq = created.Seq; return nil }); err != nil {
		t.Fatal(err)
	}
	if value, err = s.rdb.MemoryUsage(ctx, chatKey(c.ID)).Result(); err != nil {
		t.Fatal(err)
	}
	if index, err = s.rdb.MemoryUsage(ctx, convPrefix+c.ConversationSid).Result(); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := mustJSON(t, got.View()), mustJSON(t, c.View()); a != b || got.Fingerprint != c.Fingerprint || got.Seq != created.Seq {
		t.Errorf("finished chat reads back as\n%s\nwant\n%s", a, b)
	}
	return value, index
}

func mustJSON(t testing.TB, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRevocationsContract(t *testing.T) {
	storetest.RunRevocations(t, func(t *testing.T) (storetest.Revocations, storetest.Revocations) {
		srv := redistest.Start(t)
		return open(t, srv).Revocations(), open(t, srv).Revocations()
	})
}

func TestWindowsContract(t *testing.T) {
	storetest.RunWindows(t, func(t *testing.T) (chat.Windows, chat.Windows) {
		srv := redistest.Start(t)
		return open(t, srv).Windows(), open(t, srv).Windows()
	})
}

// Through Sentinel the store follows the master: once the master is killed and a replica promoted,
// claims go on, and what was replicated before is there.
func TestFollowsTheMasterThroughAFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: waits for Sentinel to fail over")
	}
	cl := redistest.StartSentinel(t, 2, 3)
	s, err := Open(cl.URL(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx := t.Context()
	claim := func(conv string) error {
		_, _, err := s.Claim(ctx, optin.Flow{ConversationSid: conv, Customer: "whatsapp:+15550001111", Trigger: "IM1", State: optin.StateRunning, StartedAt: time.Now()})
		return err
	}
	poll.Until(t, "a master through the Sentinels", func() bool { return claim("CH00000000000000000000000000000001") == nil })
	// Both replicas hold the claim before the master dies.
	for _, r := range cl.Replicas {
		rdb := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", r.Port)})
		poll.Until(t, fmt.Sprintf("the claim to reach the replica on port %d", r.Port), func() bool {
			n, _ := rdb.Exists(ctx, "optin:flow:CH00000000000000000000000000000001").Result()
			return n == 1
		})
		rdb.Close()
	}
	cl.Master.Kill()
	start := time.Now()
	poll.Until(t, "claims to resume after the failover", func() bool { return claim("CH00000000000000000000000000000002") == nil })
	t.Logf("claims resumed %v after the master was killed", time.Since(start).Round(100*time.Millisecond))
	if f, err := s.Flow(ctx, "CH00000000000000000000000000000001"); err != nil || f.Customer != "whatsapp:+15550001111" {
		t.Fatalf("the claim made before the failover: %+v %v", f, err)
	}
}

// BenchmarkSync is what waiting for a replica costs each acknowledged opt-in and each run's start
// (OPTIN_REDIS_WAIT_REPLICAS): a master and one replica on loopback, each with fsync per write.
func BenchmarkSync(b *testing.B) {
	cl := redistest.StartSentinel(b, 1, 0)
	for _, replicas := range []int{0, 1} {
		b.Run(fmt.Sprintf("replicas=%d", replicas), func(b *testing.B) {
			s, err := Open(cl.Master.URL(), time.Hour)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			s.WaitForReplicas(replicas, time.Second)
			i := 0
			for b.Loop() {
				i++
				if _, _, err := s.Claim(b.Context(), optin.Flow{ConversationSid: fmt.Sprintf("CH%032d", i), Customer: "c", Trigger: "IM", State: optin.StateRunning}); err != nil {
					b.Fatal(err)
				}
				if err := s.Sync(b.Context()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// With OPTIN_REDIS_WAIT_REPLICAS every write that guards a side effect — a chat created, changed or
// forgotten, a chat's lease, a number's lease, release or block — waits for the replicas, and fails
// when they do not acknowledge it, so that the caller does not act on a write a failover may lose
// (issue 24, defect 8).
func TestChatWritesWaitForReplicas(t *testing.T) {
	cl := redistest.StartSentinel(t, 1, 0)
	s, err := Open(cl.Master.URL(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	chats, pairs := s.Chats(), s.Pairs()
	s.WaitForReplicas(1, 5*time.Second)
	for _, id := range []string{"order-1", "order-3"} {
		if _, created, err := chats.Create(ctx, chat.Chat{ID: id, State: chat.StateStarting}); err != nil || !created {
			t.Fatalf("create with one replica acknowledging: %v %v", created, err)
		}
	}
	s.WaitForReplicas(2, 50*time.Millisecond) // one replica runs: the second never acknowledges
	for name, write := range map[string]func() error{
		"create": func() error {
			_, _, err := chats.Create(ctx, chat.Chat{ID: "order-2", State: chat.StateStarting})
			return err
		},
		"update": func() error {
			_, err := chats.Update(ctx, "order-1", func(c *chat.Chat) error { c.Work++; return nil })
			return err
		},
		"lease": func() error { _, err := chats.Lock(ctx, "order-1", "owner", time.Minute); return err },
		"number": func() error {
			_, err := pairs.Take(ctx, "order-1", []numberpool.Pair{{Address: "whatsapp:+15550001111", Number: "whatsapp:+15550100000"}})
			return err
		},
		"release":         func() error { return pairs.Release(ctx, "order-1") },
		"forget":          func() error { return chats.Delete(ctx, "order-3") },
		"release address": func() error { return pairs.ReleaseAddress(ctx, "order-1", "whatsapp:+15550001111") },
		"block": func() error {
			return pairs.Block(ctx, numberpool.Pair{Address: "whatsapp:+15550001111", Number: "whatsapp:+15550100001"}, time.Hour)
		},
	} {
		if err := write(); err == nil || !strings.Contains(err.Error(), "1 of 2 replicas") {
			t.Errorf("%s not acknowledged by the replicas: %v, want an error", name, err)
		}
	}
}

// The listing index does not keep a member for every chat ever made: once a finished chat's key has
// expired with the retention, a later create in its bucket trims it (and at most trimBatch at a time),
// while a chat whose key is still there — open, or finished and not yet expired — stays listed. Redis'
// clock is moved by expiring the keys now; the store's by a virtual clock.
func TestIndexTrimmedByRetention(t *testing.T) {
	srv := redistest.Start(t)
	s := openFor(t, srv, time.Hour).Chats()
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	ctx := t.Context()
	const ended = trimBatch + 4 // more than one create trims
	// Chats of one bucket: a create trims its own bucket.
	bucket := chatBucket(storetest.FinishedChat(0).ID)
	var of []chat.Chat
	for i := 0; len(of) < ended+4; i++ {
		if c := storetest.FinishedChat(i); chatBucket(c.ID) == bucket {
			of = append(of, c)
		}
	}
	for i, c := range of[:ended+2] {
		open := c
		open.State, open.Reason, open.History = chat.StateConnected, "", c.History[:4]
		created, _, err := s.Create(ctx, open)
		if err != nil {
			t.Fatal(err)
		}
		if i == ended+1 {
			continue // stays open
		}
		if _, err := s.Update(ctx, c.ID, func(stored *chat.Chat) error { *stored = c; stored.Seq = created.Seq; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	// The retention passes: the first `ended` keys expire; chat `ended` had its retention started
	// again (a later write), so its key outlives the first score.
	now = now.Add(time.Hour + time.Minute)
	for _, c := range of[:ended] {
		if err := s.rdb.PExpire(ctx, chatKey(c.ID), time.Millisecond).Err(); err != nil {
			t.Fatal(err)
		}
	}
	poll.Until(t, "the keys to expire", func() bool {
		n, err := s.rdb.Exists(ctx, chatKey(of[0].ID), chatKey(of[ended-1].ID)).Result()
		if err != nil {
			t.Fatal(err)
		}
		return n == 0
	})
	size := func() int64 {
		n, err := s.rdb.ZCard(ctx, bucketKey(bucket, setIndex)).Result()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := size(); n != ended+2 {
		t.Fatalf("index holds %d before any create, want %d", n, ended+2)
	}
	for i, want := range []int64{ended + 2 + 1 - trimBatch, 2 + 2} {
		c := of[ended+2+i]
		c.State, c.Reason = chat.StateStarting, ""
		if _, _, err := s.Create(ctx, c); err != nil {
			t.Fatal(err)
		}
		if n := size(); n != want {
			t.Errorf("after create %d the index holds %d, want %d", i+1, n, want)
		}
	}
	// The finished chat whose key is still there is listed and scored by its key's expiry again; the
	// ends hold nothing that is gone.
	chats, next, err := s.List(ctx, "", 2, 0)
	if err != nil || next == 0 || len(chats) != 2 {
		t.Fatalf("first page %d %d %v", len(chats), next, err)
	}
	rest, next, err := s.List(ctx, "", 10, next)
	if err != nil || next != 0 || len(rest) != 2 || rest[len(rest)-1].ID != of[ended].ID {
		t.Errorf("second page %v %d %v", ids(rest), next, err)
	}
	if ends, err := s.rdb.ZRangeWithScores(ctx, bucketKey(bucket, setEnds), 0, -1).Result(); err != nil || len(ends) != 1 ||
		ends[0].Member != of[ended].ID || int64(ends[0].Score) <= now.UnixMilli() {
		t.Errorf("ends %v %v", ends, err)
	}
}

func ids(chats []chat.Chat) []string {
	out := make([]string, len(chats))
	for i, c := range chats {
		out[i] = c.ID
	}
	return out
}

// countSMembers counts the SMEMBERS a client sends in pipelines.
type countSMembers struct{ n atomic.Int64 }

func (h *countSMembers) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (h *countSMembers) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h *countSMembers) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			if c.Name() == "smembers" {
				h.n.Add(1)
			}
		}
		return next(ctx, cmds)
	}
}

// A shard of the open chats reads only its buckets' sets when the shards divide the buckets (two of
// sixteen for eight shards), and every bucket's otherwise: a reconcile shard does not list every open
// chat of the fleet to keep an eighth of them.
func TestOpenReadsOnlyTheShardsBuckets(t *testing.T) {
	s := openFor(t, redistest.Start(t), time.Hour)
	hook := &countSMembers{}
	s.rdb.AddHook(hook)
	chats := s.Chats()
	for _, tt := range []struct{ shards, reads int }{{8, chatBuckets / 8}, {16, 1}, {1, chatBuckets}, {3, chatBuckets}} {
		hook.n.Store(0)
		if _, err := chats.Open(t.Context(), 1%tt.shards, tt.shards); err != nil {
			t.Fatal(err)
		}
		if got := hook.n.Load(); got != int64(tt.reads) {
			t.Errorf("a shard of %d read %d sets, want %d", tt.shards, got, tt.reads)
		}
	}
}
