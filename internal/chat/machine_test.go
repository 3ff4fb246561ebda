package chat

import (
	"fmt"
	"strings"
	"testing"
)

// Every pair of states, with every reason, is allowed or refused exactly as the lifecycle says.
func TestTransitionTable(t *testing.T) {
	allowed := map[string]bool{
		"starting→invited:":          true,
		"starting→connected:":        true,
		"starting→failed:failed":     true,
		"starting→closed:ended":      true,
		"starting→closed:expired":    true,
		"invited→connecting:":        true,
		"invited→declined:declined":  true,
		"invited→declined:opted_out": true,
		"invited→failed:failed":      true,
		"invited→closed:ended":       true,
		"invited→closed:expired":     true,
		"connecting→connected:":      true,
		"connecting→failed:failed":   true,
		"connecting→closed:ended":    true,
		"connecting→closed:expired":  true,
		"connected→closed:ended":     true,
		"connected→closed:expired":   true,
		// The customer not on WhatsApp and no SMS number for them: a chat not yet answered fails; one
		// answered while the move was half done closes.
		"invited→failed:unreachable":    true,
		"connecting→failed:unreachable": true,
		"connecting→closed:unreachable": true,
		"connected→closed:unreachable":  true,
	}
	reasons := []string{"", ReasonDeclined, ReasonOptedOut, ReasonEnded, ReasonExpired, ReasonFailed, ReasonUnreachable}
	seen := 0
	for _, from := range States {
		for _, to := range States {
			for _, r := range reasons {
				key := fmt.Sprintf("%s→%s:%s", from, to, r)
				if got := Allowed(from, to, r); got != allowed[key] {
					t.Errorf("%s allowed=%v, want %v", key, got, allowed[key])
				}
				if allowed[key] {
					seen++
				}
				if from.Final() && Allowed(from, to, r) {
					t.Errorf("%s leaves a final state", key)
				}
			}
		}
	}
	if seen != len(allowed) {
		t.Errorf("the table names %d transitions, %d are allowed", len(allowed), seen)
	}
	for e := range transitions {
		if strings.Contains(string(e.from), " ") || e.from == e.to {
			t.Errorf("odd edge %v", e)
		}
	}
}
