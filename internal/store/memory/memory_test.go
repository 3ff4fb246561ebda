package memory

import (
	"testing"
	"time"

	"github.com/optinkit/optin/internal/optin"
	"github.com/optinkit/optin/internal/store/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(*testing.T) (optin.Store, optin.Store) {
		s := New(time.Hour)
		return s, s
	})
}

func TestGetReturnsACopy(t *testing.T) {
	s := New(0)
	_, _, _ = s.Claim(t.Context(), optin.Flow{ConversationSid: "CH1", State: optin.StateRunning})
	_ = s.StepDone(t.Context(), "CH1", "wait", "IM1")
	f, ok := s.Get("CH1")
	f.Steps["rider"] = "x"
	if g, _ := s.Get("CH1"); !ok || len(g.Steps) != 1 {
		t.Errorf("Get aliases the stored flow: %+v", g)
	}
}

func TestFinishedFlowsAreForgottenAfterRetention(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := New(time.Hour)
	s.now = func() time.Time { return now }
	ctx := t.Context()
	for _, conv := range []string{"CHdone", "CHrunning"} {
		_, _, _ = s.Claim(ctx, optin.Flow{ConversationSid: conv, State: optin.StateRunning})
	}
	_ = s.Finish(ctx, "CHdone", optin.StateDone, "")
	now = now.Add(30 * time.Minute)
	_, _, _ = s.Claim(ctx, optin.Flow{ConversationSid: "CHother"})
	if _, ok := s.Get("CHdone"); !ok {
		t.Fatal("forgotten within the retention")
	}
	now = now.Add(31 * time.Minute)
	_, _, _ = s.Claim(ctx, optin.Flow{ConversationSid: "CHother"})
	if _, ok := s.Get("CHdone"); ok {
		t.Error("finished flow kept after the retention")
	}
	if _, ok := s.Get("CHrunning"); !ok {
		t.Error("a running flow was forgotten")
	}
}
