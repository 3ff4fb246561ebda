package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/optinkit/optin/emulator"
	"github.com/optinkit/optin/internal/poll"
)

// scrape reads /metrics into "name{label=value,…}" → value; histograms contribute their _count.
func scrape(t *testing.T, base string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			key := name + "{" + strings.Join(labels, ",") + "}"
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				out[key] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[key] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[name+"_count{"+strings.Join(labels, ",")+"}"] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

// After one opt-in, a duplicate, a bad signature and a 429, every counter moved by exactly what happened.
func TestMetricsMoveExactly(t *testing.T) {
	fake := newFake(t, hook(1), hook(2))
	fail(t, fake, emulator.Fault{Route: "webhooks.list", Kind: "429", Code: 20429, Count: 1})
	s := start(t, fake, nil)
	before := scrape(t, s.base)

	if code, _ := s.send(s.postReq(event(msg1, customer))); code != 200 {
		t.Fatal(code)
	}
	waitFor(t, fake, 6)
	dup := s.postReq(event(msg1, customer))
	if code, _ := s.send(dup); code != 200 {
		t.Fatal(code)
	}
	forged := s.postReq(event(msg1, customer))
	forged.Header.Set("X-Twilio-Signature", "forged")
	if code, _ := s.send(forged); code != 403 {
		t.Fatal(code)
	}
	other := s.postReq(event(msg2, "whatsapp:+15550002222"))
	if code, _ := s.send(other); code != 200 {
		t.Fatal(code)
	}
	want := map[string]float64{
		`optin_webhook_requests_total{outcome=processed}`:                       1,
		`optin_webhook_requests_total{outcome=duplicate}`:                       1,
		`optin_webhook_requests_total{outcome=bad_signature}`:                   1,
		`optin_webhook_requests_total{outcome=ignored}`:                         1,
		`optin_flows_finished_total{state=done}`:                                1,
		`optin_twilio_requests_total{operation=create_message,status=201}`:      2,
		`optin_twilio_requests_total{operation=list_webhooks,status=429}`:       1,
		`optin_twilio_requests_total{operation=list_webhooks,status=200}`:       1,
		`optin_twilio_requests_total{operation=delete_webhook,status=204}`:      2,
		`optin_twilio_request_duration_seconds_count{operation=create_message}`: 2,
		`optin_twilio_request_duration_seconds_count{operation=list_webhooks}`:  2,
		`optin_twilio_request_duration_seconds_count{operation=delete_webhook}`: 2,
		`optin_retries_total{operation=list_webhooks}`:                          1,
		`optin_step_duration_seconds_count{outcome=ok,step=wait}`:               1,
		`optin_step_duration_seconds_count{outcome=ok,step=rider}`:              1,
		`optin_step_duration_seconds_count{outcome=ok,step=webhooks}`:           1,
	}
	// The flow records its steps and outcome after its last call, concurrently: poll until every
	// counter has moved as far as it should, then check each exactly.
	var after map[string]float64
	behind := func() (late []string) {
		for k, w := range want {
			if after[k]-before[k] < w {
				late = append(late, fmt.Sprintf("%s moved by %v, want %v", k, after[k]-before[k], w))
			}
		}
		return late
	}
	defer func() {
		for _, l := range behind() {
			t.Log(l)
		}
	}()
	poll.Until(t, "every counter of the flow to move", func() bool {
		after = scrape(t, s.base)
		return len(behind()) == 0
	})
	for k, w := range want {
		if got := after[k] - before[k]; got != w {
			t.Errorf("%s moved by %v, want %v", k, got, w)
		}
	}
	for k, v := range after {
		if _, expected := want[k]; !expected && strings.HasPrefix(k, "optin_") && k != "optin_queue_depth{}" && v != before[k] {
			t.Errorf("%s moved unexpectedly: %v → %v", k, before[k], v)
		}
	}
	if after["optin_queue_depth{}"] != 0 {
		t.Errorf("queue depth %v after the flow", after["optin_queue_depth{}"])
	}
	for _, k := range []string{"go_goroutines{}", "process_resident_memory_bytes{}"} {
		if _, ok := after[k]; !ok {
			t.Errorf("%s not exported", k)
		}
	}
}
