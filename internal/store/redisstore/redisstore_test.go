package redisstore

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/optinkit/optin/internal/optin"
	"github.com/optinkit/optin/internal/redistest"
)

func open(t *testing.T, srv *redistest.Server) *Store {
	t.Helper()
	s, err := Open(srv.URL(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s
}

// Two stores on one Redis are two replicas: of 100 concurrent claims exactly one wins.
func TestClaimIsAtomicAcrossReplicas(t *testing.T) {
	srv := redistest.Start(t)
	a, b := open(t, srv), open(t, srv)
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range 100 {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			_, claimed, err := s.Claim(t.Context(), optin.Flow{ConversationSid: "CH1", Customer: "whatsapp:+1", Trigger: "IM1", State: optin.StateRunning, StartedAt: time.Now()})
			if err != nil {
				t.Error(err)
			}
			if claimed {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Errorf("%d claims won, want 1", wins.Load())
	}
}

func TestFlowLifecycle(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, srv)
	ctx := t.Context()
	started := time.UnixMilli(time.Now().UnixMilli())
	first := optin.Flow{ConversationSid: "CH1", Customer: "whatsapp:+1", Trigger: "IM1", State: optin.StateRunning, StartedAt: started}
	if _, claimed, err := s.Claim(ctx, first); err != nil || !claimed {
		t.Fatalf("claim: %v %v", claimed, err)
	}
	got, claimed, err := s.Claim(ctx, optin.Flow{ConversationSid: "CH1", Customer: "whatsapp:+2", Trigger: "IM2", State: optin.StateRunning})
	if err != nil || claimed || got.Customer != "whatsapp:+1" || got.Trigger != "IM1" || got.State != optin.StateRunning || !got.StartedAt.Equal(started) {
		t.Fatalf("second claim: %+v %v %v", got, claimed, err)
	}
	for want := 1; want <= 2; want++ {
		f, err := s.Begin(ctx, "CH1")
		if err != nil || f.Runs != want {
			t.Fatalf("begin %d: %+v %v", want, f, err)
		}
	}
	if err := s.StepDone(ctx, "CH1", optin.StepWait, "IM7"); err != nil {
		t.Fatal(err)
	}
	if f, _ := s.Begin(ctx, "CH1"); f.Steps[optin.StepWait] != "IM7" || len(f.Steps) != 1 {
		t.Errorf("steps %v", f.Steps)
	}
	if err := s.Finish(ctx, "CH1", optin.StateFailed, "step rider: 63016"); err != nil {
		t.Fatal(err)
	}
	f, ok, err := s.Get(ctx, "CH1")
	if err != nil || !ok || f.State != optin.StateFailed || f.Detail != "step rider: 63016" || f.FinishedAt.IsZero() || f.Runs != 3 {
		t.Errorf("get: %+v %v %v", f, ok, err)
	}
	if ttl := s.rdb.PTTL(ctx, s.key("CH1")).Val(); ttl <= 0 || ttl > time.Hour {
		t.Errorf("finished flow TTL %v, want within an hour", ttl)
	}
	for name, err := range map[string]error{
		"begin":  func() error { _, err := s.Begin(ctx, "CH2"); return err }(),
		"step":   s.StepDone(ctx, "CH2", "wait", "x"),
		"finish": s.Finish(ctx, "CH2", optin.StateDone, ""),
	} {
		if err == nil {
			t.Errorf("%s of an unclaimed flow succeeded", name)
		}
	}
	if n := s.rdb.Exists(ctx, s.key("CH2")).Val(); n != 0 {
		t.Error("an operation on an unclaimed flow created it")
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
	f, ok, err := s.Get(t.Context(), "CH1")
	if err != nil || !ok || f.Trigger != "IM1" {
		t.Errorf("after restart: %+v %v %v", f, ok, err)
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
