package inproc

import (
	"testing"
	"time"

	"github.com/optinkit/optin/internal/queue/queuetest"
)

func newQueue(maxRuns int) *Queue {
	return New(maxRuns, func(int, error) time.Duration { return time.Millisecond })
}

func TestContract(t *testing.T) {
	queuetest.Run(t, func(t *testing.T, maxRuns int) queuetest.Queue { return newQueue(maxRuns) })
}

func TestNotStarted(t *testing.T) {
	if err := New(1, nil).Enqueue(t.Context(), "CH1"); err == nil {
		t.Error("enqueue before Start accepted")
	}
}
