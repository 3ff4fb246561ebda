package memory

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/optinkit/optin/internal/optin"
)

func TestClaimIsAtomic(t *testing.T) {
	s := New()
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Go(func() {
			_, claimed, err := s.Claim(t.Context(), optin.Flow{ConversationSid: "CH1", Trigger: string(rune('a' + i%26)), State: optin.StateRunning})
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

func TestClaimReturnsExistingAndFinishRecords(t *testing.T) {
	s := New()
	first := optin.Flow{ConversationSid: "CH1", Customer: "whatsapp:+1", Trigger: "IM1", State: optin.StateRunning}
	if _, claimed, _ := s.Claim(t.Context(), first); !claimed {
		t.Fatal("first claim lost")
	}
	got, claimed, _ := s.Claim(t.Context(), optin.Flow{ConversationSid: "CH1", Customer: "whatsapp:+2", Trigger: "IM2"})
	if claimed || got.Trigger != first.Trigger || got.Customer != first.Customer || got.State != first.State {
		t.Fatalf("second claim = %+v %v, want existing %+v", got, claimed, first)
	}
	if err := s.Finish(t.Context(), "CH1", optin.StateFailed, "step rider: 63016"); err != nil {
		t.Fatal(err)
	}
	f, _ := s.Get("CH1")
	if f.State != optin.StateFailed || f.Detail != "step rider: 63016" || f.FinishedAt.IsZero() || f.Trigger != "IM1" || f.Runs != 0 {
		t.Errorf("flow = %+v", f)
	}
	if err := s.Finish(t.Context(), "CH2", optin.StateDone, ""); err == nil {
		t.Error("finishing an unclaimed flow succeeded")
	}
	if _, claimed, _ := s.Claim(t.Context(), optin.Flow{ConversationSid: "CH2"}); !claimed {
		t.Error("other conversation not claimable")
	}
}

func TestBeginAndStepDone(t *testing.T) {
	s := New()
	if _, err := s.Begin(t.Context(), "CH1"); err == nil {
		t.Error("begin of an unclaimed flow succeeded")
	}
	if err := s.StepDone(t.Context(), "CH1", "wait", "IM1"); err == nil {
		t.Error("step of an unclaimed flow recorded")
	}
	_, _, _ = s.Claim(t.Context(), optin.Flow{ConversationSid: "CH1", State: optin.StateRunning})
	for want := 1; want <= 2; want++ {
		f, err := s.Begin(t.Context(), "CH1")
		if err != nil || f.Runs != want {
			t.Fatalf("run %d: %+v %v", want, f, err)
		}
	}
	if err := s.StepDone(t.Context(), "CH1", "wait", "IM9"); err != nil {
		t.Fatal(err)
	}
	f, _ := s.Begin(t.Context(), "CH1")
	if f.Steps["wait"] != "IM9" || len(f.Steps) != 1 {
		t.Errorf("steps = %v", f.Steps)
	}
	f.Steps["rider"] = "mutated"
	if g, _ := s.Get("CH1"); len(g.Steps) != 1 {
		t.Error("returned flow aliases the stored one")
	}
}
