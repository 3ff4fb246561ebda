package main

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"time"
)

// csvHeader names the columns of -csv; scripts/perfplot reads them by name.
var csvHeader = []string{"label", "mode", "rate", "conns", "latency_ms", "sent", "rps", "errors",
	"ack_p50_ms", "ack_p99_ms", "ack_p999_ms", "accepted", "completed", "completion_p50_ms", "completion_p99_ms", "peak_rss_mb", "service_cpu_us_per_req"}

// csvRow is one run's figures.
type csvRow struct {
	o         options
	res       result
	completed int
	c50, c99  time.Duration
	rssMB     float64
	// cpuUs is the service's CPU per request, in µs (0 when unknown).
	cpuUs float64
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 3, 64)
}

func (r csvRow) append(path string) error {
	_, err := os.Stat(path)
	isNew := errors.Is(err, fs.ErrNotExist)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("-csv: %w", err)
	}
	w := csv.NewWriter(f)
	if isNew {
		_ = w.Write(csvHeader)
	}
	p := percentiles(r.res.latencies, 0.5, 0.99, 0.999)
	_ = w.Write([]string{r.o.label, r.o.mode, strconv.Itoa(r.o.rate), strconv.Itoa(r.o.conns), ms(r.o.latency),
		strconv.Itoa(r.res.sent), strconv.FormatFloat(r.res.rps(), 'f', 1, 64), strconv.Itoa(r.res.errors),
		ms(p[0]), ms(p[1]), ms(p[2]), strconv.Itoa(r.res.accepted), strconv.Itoa(r.completed), ms(r.c50), ms(r.c99),
		strconv.FormatFloat(r.rssMB, 'f', 1, 64), strconv.FormatFloat(r.cpuUs, 'f', 0, 64)})
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return fmt.Errorf("-csv: %w", err)
	}
	return f.Close()
}
