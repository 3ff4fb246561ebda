// Package storetest is the contract every optin.Store must meet, run by each store's tests.
package storetest

import (
	"errors"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/optinkit/optin/internal/optin"
)

// Run checks the contract. open returns two handles on one empty store — two replicas sharing it, or
// the same store twice where there is no sharing.
func Run(t *testing.T, open func(t *testing.T) (optin.Store, optin.Store)) {
	first := func(t *testing.T) optin.Store { s, _ := open(t); return s }
	t.Run("claim is atomic", func(t *testing.T) {
		a, b := open(t)
		stores := []optin.Store{a, b}
		oneWins(t, 100, func(i int) (bool, error) {
			f := optin.Flow{ConversationSid: "CH1", Customer: "whatsapp:+1", Trigger: fmt.Sprint("IM", i), State: optin.StateRunning, StartedAt: time.Now()}
			_, claimed, err := stores[i%2].Claim(t.Context(), f)
			return claimed, err
		})
	})

	t.Run("lifecycle", func(t *testing.T) {
		s := first(t)
		ctx := t.Context()
		started := time.UnixMilli(time.Now().UnixMilli())
		first := optin.Flow{ConversationSid: "CH2", Customer: "whatsapp:+1", Trigger: "IM1", State: optin.StateRunning, StartedAt: started,
			Answer: optin.AnswerDecline, Chat: true}
		if _, claimed, err := s.Claim(ctx, first); err != nil || !claimed {
			t.Fatalf("claim: %v %v", claimed, err)
		}
		// What a won claim recorded is f itself, with no steps and no runs, whatever Claim returned.
		if f, err := s.Flow(ctx, "CH2"); err != nil || f.ConversationSid != "CH2" || f.Customer != first.Customer || f.Trigger != first.Trigger ||
			f.State != optin.StateRunning || !f.StartedAt.Equal(started) || f.Runs != 0 || len(f.Steps) != 0 || !f.FinishedAt.IsZero() ||
			f.Answer != optin.AnswerDecline || !f.Chat {
			t.Fatalf("flow after the claim: %+v %v", f, err)
		}
		got, claimed, err := s.Claim(ctx, optin.Flow{ConversationSid: "CH2", Customer: "whatsapp:+2", Trigger: "IM2", State: optin.StateRunning})
		if err != nil || claimed || got.Customer != "whatsapp:+1" || got.Trigger != "IM1" || got.State != optin.StateRunning || !got.StartedAt.Equal(started) {
			t.Fatalf("second claim: %+v %v %v", got, claimed, err)
		}
		for want := 1; want <= 2; want++ {
			if f, err := s.Begin(ctx, "CH2"); err != nil || f.Runs != want || f.Trigger != "IM1" {
				t.Fatalf("begin %d: %+v %v", want, f, err)
			}
		}
		if err := s.StepsDone(ctx, "CH2", map[string]string{optin.StepWait: "IM7", optin.StepWebhooks: "done"}); err != nil {
			t.Fatal(err)
		}
		if err := s.StepsDone(ctx, "CH2", map[string]string{optin.StepWait: "IM8"}); err != nil {
			t.Fatal(err)
		}
		if err := s.StepsDone(ctx, "CH2", nil); err != nil {
			t.Fatal(err)
		}
		wantSteps := map[string]string{optin.StepWait: "IM8", optin.StepWebhooks: "done"}
		f, err := s.Begin(ctx, "CH2")
		if err != nil || !maps.Equal(f.Steps, wantSteps) {
			t.Fatalf("steps %v %v, want %v", f.Steps, err, wantSteps)
		}
		f.Steps[optin.StepRider] = "changed by the caller"
		if again, _ := s.Begin(ctx, "CH2"); !maps.Equal(again.Steps, wantSteps) {
			t.Error("a returned flow aliases the stored one")
		}
		read, err := s.Flow(ctx, "CH2")
		if err != nil || read.Runs != 4 || !maps.Equal(read.Steps, wantSteps) {
			t.Fatalf("flow: %+v %v", read, err)
		}
		read.Steps[optin.StepRider] = "changed by the caller"
		if again, _ := s.Flow(ctx, "CH2"); !maps.Equal(again.Steps, wantSteps) {
			t.Error("Flow's result aliases the stored one")
		}
		if err := s.Finish(ctx, "CH2", optin.StateFailed, "step rider: 63016"); err != nil {
			t.Fatal(err)
		}
		if err := s.Finish(ctx, "CH2", optin.StateDone, ""); err != nil {
			t.Errorf("second finish: %v", err)
		}
		done, _, err := s.Claim(ctx, optin.Flow{ConversationSid: "CH2", Customer: "whatsapp:+1", Trigger: "IM3"})
		if err != nil || done.State != optin.StateFailed || done.Detail != "step rider: 63016" || done.FinishedAt.IsZero() || done.Runs != 4 || done.Trigger != "IM1" {
			t.Errorf("after finish: %+v %v", done, err)
		}
		// A late run's step records (it ran on while another finished the flow) change nothing: the
		// finished flow stays compact.
		if err := s.StepsDone(ctx, "CH2", map[string]string{optin.StepRider: "IM9"}); err != nil {
			t.Errorf("steps of a finished flow: %v", err)
		}
		if f, err := s.Flow(ctx, "CH2"); err != nil || len(f.Steps) != 0 || f.State != optin.StateFailed {
			t.Errorf("finished flow after a late step record: %+v %v", f, err)
		}
	})

	t.Run("unclaimed flows are not created", func(t *testing.T) {
		s := first(t)
		ctx := t.Context()
		if _, err := s.Flow(ctx, "CH3"); !errors.Is(err, optin.ErrNoFlow) {
			t.Errorf("flow of an unclaimed conversation: %v, want ErrNoFlow", err)
		}
		if _, err := s.Begin(ctx, "CH3"); !errors.Is(err, optin.ErrNoFlow) {
			t.Errorf("begin of an unclaimed flow: %v, want ErrNoFlow", err)
		}
		if err := s.StepsDone(ctx, "CH3", map[string]string{optin.StepWait: "x"}); !errors.Is(err, optin.ErrNoFlow) {
			t.Errorf("step of an unclaimed flow: %v, want ErrNoFlow", err)
		}
		if err := s.StepsDone(ctx, "CH3", nil); err != nil {
			t.Errorf("no steps of an unclaimed flow: %v, want nothing done", err)
		}
		if err := s.Finish(ctx, "CH3", optin.StateDone, ""); !errors.Is(err, optin.ErrNoFlow) {
			t.Errorf("finish of an unclaimed flow: %v, want ErrNoFlow", err)
		}
		if _, claimed, err := s.Claim(ctx, optin.Flow{ConversationSid: "CH3", State: optin.StateRunning}); !claimed || err != nil {
			t.Errorf("the failed operations left something behind: claimed=%v %v", claimed, err)
		}
	})
}

// oneWins runs try n times at once and checks that exactly one of them won.
func oneWins(t *testing.T, n int, try func(i int) (won bool, err error)) {
	t.Helper()
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if won, err := try(i); err != nil {
				t.Error(err)
			} else if won {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Errorf("%d of %d won, want 1", wins.Load(), n)
	}
}
