package metrics

import (
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/optinkit/optin/internal/optin"
)

func TestRecordsAndServes(t *testing.T) {
	reg := prometheus.NewRegistry()
	depth, depthErr := 3, error(nil)
	m := New(reg, func() (int, error) { return depth, depthErr })
	m.Webhook(Processed)
	m.Webhook(BadSignature)
	m.Webhook(BadSignature)
	m.FlowFinished(optin.StateFailed)
	m.StepFinished(optin.StepRider, "failed", 2*time.Second)
	m.Retry("list_webhooks")
	m.TwilioRequest("create_message", 0, time.Second)
	m.TwilioRequest("create_message", 201, time.Second)

	for name, tc := range map[string]struct {
		c    prometheus.Collector
		want float64
	}{
		"bad signatures": {m.webhooks.WithLabelValues(BadSignature), 2},
		"failed flows":   {m.flows.WithLabelValues("failed"), 1},
		"retries":        {m.retries.WithLabelValues("list_webhooks"), 1},
		"no answer":      {m.twilio.WithLabelValues("create_message", "error"), 1},
		"201":            {m.twilio.WithLabelValues("create_message", "201"), 1},
	} {
		if got := testutil.ToFloat64(tc.c); got != tc.want {
			t.Errorf("%s = %v, want %v", name, got, tc.want)
		}
	}
	body := func() string {
		w := httptest.NewRecorder()
		Handler(reg).ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
		b, _ := io.ReadAll(w.Body)
		return string(b)
	}
	if b := body(); !strings.Contains(b, "optin_queue_depth 3") || !strings.Contains(b, "go_goroutines") || !strings.Contains(b, `optin_step_duration_seconds_bucket{outcome="failed",step="rider",le="2.5"} 1`) {
		t.Errorf("exposition:\n%s", b)
	}
	depthErr = errors.New("redis down")
	if b := body(); !strings.Contains(b, "optin_queue_depth -1") {
		t.Error("unreadable queue not shown as -1")
	}
}
