// Command perfplot draws docs/PERFORMANCE.md's plots from the CSV rows cmd/loadgen -csv writes:
// acknowledgement latency against offered rate, and opt-in completion against the upstream latency,
// one line per label (memory, redis). scripts/perf.sh runs the sweeps and then this.
package main

import (
	"cmp"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

func main() {
	rate := flag.String("rate", "", "CSV of the rate sweep (open loop at several rates, one upstream latency)")
	latency := flag.String("latency", "", "CSV of the latency sweep (one rate, several upstream latencies)")
	out := flag.String("out", "docs/img", "directory the PNGs are written to")
	flag.Parse()
	if err := run(*rate, *latency, *out); err != nil {
		fmt.Fprintln(os.Stderr, "perfplot:", err)
		os.Exit(1)
	}
}

func run(ratePath, latencyPath, out string) error {
	if ratePath == "" || latencyPath == "" {
		return errors.New("-rate and -latency are both needed")
	}
	rows, err := read(ratePath)
	if err != nil {
		return err
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Acknowledgement p99 against offered rate (Twilio %g ms late)", num(rows[0], "latency_ms"))
	p.X.Label.Text = "offered webhooks per second (open loop)"
	p.Y.Label.Text = "acknowledgement p99 (ms, log scale)"
	logY(p)
	if err := lines(p, rows, "rate", "ack_p99_ms"); err != nil {
		return err
	}
	target(p, rows, "rate", func(float64) float64 { return 20 }, "target 20 ms")
	if err := p.Save(7*vg.Inch, 4.5*vg.Inch, filepath.Join(out, "perf-ack-vs-rate.png")); err != nil {
		return err
	}

	if rows, err = read(latencyPath); err != nil {
		return err
	}
	p = plot.New()
	p.Title.Text = fmt.Sprintf("Opt-in completion p99 against upstream latency (%g webhooks/s)", num(rows[0], "rate"))
	p.X.Label.Text = "Twilio's latency per call (ms)"
	p.Y.Label.Text = "completion p99 (ms)"
	if err := lines(p, rows, "latency_ms", "completion_p99_ms"); err != nil {
		return err
	}
	target(p, rows, "latency_ms", func(x float64) float64 { return 2.3 * x }, "target 2.3 × latency")
	return p.Save(7*vg.Inch, 4.5*vg.Inch, filepath.Join(out, "perf-completion-vs-latency.png"))
}

// logY puts the y axis on a log scale: acknowledgements span milliseconds to a second.
func logY(p *plot.Plot) {
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
}

func read(path string) ([]map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(recs) < 2 {
		return nil, fmt.Errorf("%s: no rows", path)
	}
	var rows []map[string]string
	for _, r := range recs[1:] {
		m := map[string]string{}
		for i, name := range recs[0] {
			m[name] = r[i]
		}
		rows = append(rows, m)
	}
	return rows, nil
}

func num(m map[string]string, k string) float64 {
	v, _ := strconv.ParseFloat(m[k], 64)
	return v
}

// lines adds one line with points per label, x ascending; where runs repeat a point, the line goes
// through their median.
func lines(p *plot.Plot, rows []map[string]string, x, y string) error {
	var labels []string
	byLabel := map[string]map[float64][]float64{}
	for _, r := range rows {
		l := r["label"]
		if _, ok := byLabel[l]; !ok {
			labels = append(labels, l)
			byLabel[l] = map[float64][]float64{}
		}
		byLabel[l][num(r, x)] = append(byLabel[l][num(r, x)], num(r, y))
	}
	var args []any
	for _, l := range labels {
		args = append(args, l, medians(byLabel[l]))
	}
	return plotutil.AddLinePoints(p, args...)
}

// medians turns the values seen at each x into one point at their median, x ascending.
func medians(ys map[float64][]float64) plotter.XYs {
	var out plotter.XYs
	for x, vs := range ys {
		slices.Sort(vs)
		m := vs[len(vs)/2]
		if len(vs)%2 == 0 {
			m = (vs[len(vs)/2-1] + m) / 2
		}
		out = append(out, plotter.XY{X: x, Y: m})
	}
	slices.SortFunc(out, func(a, b plotter.XY) int { return cmp.Compare(a.X, b.X) })
	return out
}

// target draws the target as a dashed grey line over the x range of rows.
func target(p *plot.Plot, rows []map[string]string, x string, f func(float64) float64, name string) {
	lo, hi := num(rows[0], x), num(rows[0], x)
	for _, r := range rows {
		lo, hi = min(lo, num(r, x)), max(hi, num(r, x))
	}
	l, err := plotter.NewLine(plotter.XYs{{X: lo, Y: f(lo)}, {X: hi, Y: f(hi)}})
	if err != nil {
		return
	}
	l.Color = color.Gray{Y: 120}
	l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	p.Add(l)
	p.Legend.Add(name, l)
}
