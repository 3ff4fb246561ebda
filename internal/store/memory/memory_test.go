package memory

import (
	"testing"

	"github.com/optinkit/optin/internal/optin"
	"github.com/optinkit/optin/internal/store/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(*testing.T) (optin.Store, optin.Store) {
		s := New()
		return s, s
	})
}

func TestGetReturnsACopy(t *testing.T) {
	s := New()
	_, _, _ = s.Claim(t.Context(), optin.Flow{ConversationSid: "CH1", State: optin.StateRunning})
	_ = s.StepDone(t.Context(), "CH1", "wait", "IM1")
	f, ok := s.Get("CH1")
	f.Steps["rider"] = "x"
	if g, _ := s.Get("CH1"); !ok || len(g.Steps) != 1 {
		t.Errorf("Get aliases the stored flow: %+v", g)
	}
}
