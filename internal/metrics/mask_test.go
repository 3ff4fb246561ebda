package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestCountsTheMask(t *testing.T) {
	m := New(prometheus.NewRegistry(), nil)
	if got := testutil.ToFloat64(m.mask.hook); got != -1 {
		t.Errorf("hook before the check = %v, want -1", got)
	}
	m.MessageGuarded("number", "redact")
	m.MessageGuarded("number", "redact")
	m.MessageGuarded("email", "block")
	m.MessageGuarded("fax", "shred")
	m.GuardSkipped(GuardTimeout)
	m.GuardSkipped("made-up")
	m.AfterEnd(AfterEndAnswered)
	m.AfterEnd(AfterEndSilenced)
	m.AfterEnd(AfterEndSilenced)
	m.GuardHook(false)
	for name, tc := range map[string]struct {
		c    prometheus.Collector
		want float64
	}{
		"number redact": {m.mask.guarded.WithLabelValues("number", "redact"), 2},
		"email block":   {m.mask.guarded.WithLabelValues("email", "block"), 1},
		"link redact":   {m.mask.guarded.WithLabelValues("link", "redact"), 0},
		"other other":   {m.mask.guarded.WithLabelValues("other", "other"), 1},
		"timeout":       {m.mask.skipped.WithLabelValues("timeout"), 1},
		"skipped other": {m.mask.skipped.WithLabelValues("other"), 1},
		"answered":      {m.mask.afterEnd.WithLabelValues("answered"), 1},
		"silenced":      {m.mask.afterEnd.WithLabelValues("silenced"), 2},
		"hook":          {m.mask.hook, 0},
	} {
		if got := testutil.ToFloat64(tc.c); got != tc.want {
			t.Errorf("%s = %v, want %v", name, got, tc.want)
		}
	}
	// Every known series exported before its first count, for rates and alerts.
	if n := testutil.CollectAndCount(m.mask.afterEnd); n != len(afterEndOutcomes) {
		t.Errorf("%d after-end series, want %d", n, len(afterEndOutcomes))
	}
}
