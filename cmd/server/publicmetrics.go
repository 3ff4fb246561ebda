package main

import (
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// withoutNumbers is what the public listener's /metrics exports: g with every series that names a
// business number (the label "number") summed over the numbers, so that optin_pool_pairs_in_use says
// how many pairs each channel leases but not on which numbers. The admin listener serves g whole.
func withoutNumbers(g prometheus.Gatherer) prometheus.Gatherer {
	return prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		families, err := g.Gather()
		for i, f := range families {
			if slices.ContainsFunc(f.GetMetric(), hasNumber) {
				families[i] = sumOverNumbers(f)
			}
		}
		return families, err
	})
}

func hasNumber(m *dto.Metric) bool {
	return slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetName() == "number" })
}

// sumOverNumbers drops the number label of f's series and adds up those left with the same labels.
// Only counters, gauges and untyped values can be added up; a series of another type that names a
// number is dropped.
func sumOverNumbers(f *dto.MetricFamily) *dto.MetricFamily {
	out := &dto.MetricFamily{Name: f.Name, Help: f.Help, Type: f.Type, Unit: f.Unit}
	sums := map[string]*dto.Metric{}
	for _, m := range f.GetMetric() {
		if !hasNumber(m) {
			out.Metric = append(out.Metric, m)
			continue
		}
		var labels []*dto.LabelPair
		var key strings.Builder
		for _, l := range m.GetLabel() {
			if l.GetName() != "number" {
				labels = append(labels, l)
				key.WriteString(l.GetName() + "\x00" + l.GetValue() + "\x00")
			}
		}
		sum, ok := sums[key.String()]
		if !ok {
			sum = &dto.Metric{Label: labels}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				sum.Counter = &dto.Counter{Value: new(float64)}
			case dto.MetricType_GAUGE:
				sum.Gauge = &dto.Gauge{Value: new(float64)}
			case dto.MetricType_UNTYPED:
				sum.Untyped = &dto.Untyped{Value: new(float64)}
			default:
				continue
			}
			sums[key.String()] = sum
			out.Metric = append(out.Metric, sum)
		}
		switch {
		case sum.Counter != nil:
			*sum.Counter.Value += m.GetCounter().GetValue()
		case sum.Gauge != nil:
			*sum.Gauge.Value += m.GetGauge().GetValue()
		case sum.Untyped != nil:
			*sum.Untyped.Value += m.GetUntyped().GetValue()
		}
	}
	return out
}
