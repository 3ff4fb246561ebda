package main

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Series that name a number are summed over the numbers, per the labels left; the others pass as they are.
func TestWithoutNumbers(t *testing.T) {
	reg := prometheus.NewRegistry()
	pairs := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "pairs", Help: "Pairs."}, []string{"number", "channel"})
	sent := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sent_total", Help: "Sent."}, []string{"number"})
	other := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "other_total", Help: "Other."}, []string{"outcome"})
	reg.MustRegister(pairs, sent, other)
	pairs.WithLabelValues("whatsapp:+15550100000", "whatsapp").Set(2)
	pairs.WithLabelValues("whatsapp:+15550100001", "whatsapp").Set(3)
	pairs.WithLabelValues("+15550100009", "sms").Set(1)
	sent.WithLabelValues("whatsapp:+15550100000").Add(4)
	sent.WithLabelValues("whatsapp:+15550100001").Add(5)
	other.WithLabelValues("ok").Add(7)

	want := `# HELP other_total Other.
# TYPE other_total counter
other_total{outcome="ok"} 7
# HELP pairs Pairs.
# TYPE pairs gauge
pairs{channel="sms"} 1
pairs{channel="whatsapp"} 5
# HELP sent_total Sent.
# TYPE sent_total counter
sent_total 9
`
	if err := testutil.GatherAndCompare(withoutNumbers(reg), strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}
