package metrics

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestCountsCalls(t *testing.T) {
	m := New(prometheus.NewRegistry(), nil)
	m.CallStarted()
	m.CallStarted()
	m.CallEnded("completed", 95*time.Second)
	m.CallEnded("no-answer", 0)
	m.CallEnded("made-up", 5*time.Second)
	m.CallRefused("withheld")
	m.CallRefused("ended")
	m.CallRefused("ended")
	for name, tc := range map[string]struct {
		c    prometheus.Collector
		want float64
	}{
		"started":   {m.calls.started, 2},
		"completed": {m.calls.ended.WithLabelValues("completed"), 1},
		"no-answer": {m.calls.ended.WithLabelValues("no-answer"), 1},
		"busy":      {m.calls.ended.WithLabelValues("busy"), 0},
		"other":     {m.calls.ended.WithLabelValues("other"), 1},
		"seconds":   {m.calls.seconds, 100},
		"withheld":  {m.calls.refused.WithLabelValues("withheld"), 1},
		"ended":     {m.calls.refused.WithLabelValues("ended"), 2},
	} {
		if got := testutil.ToFloat64(tc.c); got != tc.want {
			t.Errorf("%s = %v, want %v", name, got, tc.want)
		}
	}
	if n := testutil.CollectAndCount(m.calls.ended); n != len(dialStatuses)+1 {
		t.Errorf("%d status series, want the %d known and other", n, len(dialStatuses))
	}
}
