// Command loadgen drives Twilio-signed (or forged) Conversations webhooks at a running optin service on
// this machine, closed- or open-loop, bounded in count and time, and reports throughput, latency
// percentiles, errors and — with its own zero-latency-or-slower stand-in for Twilio — how long each
// opt-in took to complete. A bare handler measured in the same run gives the ratio to the machine's limit.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/optinkit/optin/internal/signature"
)

func main() {
	if os.Getenv(bareServerEnv) != "" {
		if err := serveBare(); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen (bare handler):", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

type options struct {
	target, signURL, token, mode string
	conns, rate, n               int
	duration, latency            time.Duration
	twilioAddr                   string
	bare, bareInProcess          bool
	pid                          int
	flood                        int
	debug                        string
	csv, label                   string
	cpuProfile                   string
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.target, "target", "http://127.0.0.1:8080/webhooks/conversations", "the service's webhook URL (loopback only)")
	fs.StringVar(&o.signURL, "sign-url", "", "the URL to sign for (OPTIN_PUBLIC_URL + path); default -target")
	fs.StringVar(&o.token, "token", os.Getenv("TWILIO_AUTH_TOKEN"), "the service's auth token (TWILIO_AUTH_TOKEN)")
	fs.StringVar(&o.mode, "mode", "accept", "accept (a new conversation each), duplicate (one event again and again) or forged")
	fs.IntVar(&o.conns, "c", 16, "closed loop: connections, each sending its next request when answered")
	fs.IntVar(&o.rate, "rate", 0, "open loop: requests per second, whatever the answers (0: closed loop)")
	fs.IntVar(&o.n, "n", 10000, "requests at most")
	fs.DurationVar(&o.duration, "duration", 30*time.Second, "time at most")
	fs.StringVar(&o.twilioAddr, "twilio", "", "serve a stand-in Twilio REST API on this loopback address (point OPTIN_TWILIO_API_URL at it) to measure completion")
	fs.DurationVar(&o.latency, "latency", 0, "with -twilio: how late it answers each call")
	fs.BoolVar(&o.bare, "bare", true, "first load a bare handler answering 403 on loopback, for the ratio")
	fs.BoolVar(&o.bareInProcess, "bare-in-process", false, "serve the bare handler from this process (sharing its runtime with the load) rather than from a process of its own, as the service has")
	fs.IntVar(&o.pid, "pid", 0, "the service's process id, to report its peak memory (Linux)")
	fs.IntVar(&o.flood, "flood", 0, "connections sending forged requests all along the measured load")
	fs.StringVar(&o.csv, "csv", "", "append the run's figures as one CSV row to this file (the header is written when the file is new)")
	fs.StringVar(&o.label, "label", "", "with -csv: a name for the run's setup (e.g. memory, redis)")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write this process's CPU profile to the file (to see what the load generator itself costs)")
	fs.StringVar(&o.debug, "debug", "", "the service's OPTIN_DEBUG_ADDR (loopback), to report its goroutines before and after the load")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if err := loopbackOnly(o.target); err != nil {
		return fmt.Errorf("-target: %w", err)
	}
	if o.signURL == "" {
		o.signURL = o.target
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return fmt.Errorf("-cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("-cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	if o.mode != "forged" && o.token == "" {
		return errors.New("-token (or TWILIO_AUTH_TOKEN) is needed to sign")
	}
	var tw *standIn
	if o.twilioAddr != "" {
		var err error
		if tw, err = startStandIn(o.twilioAddr, o.latency); err != nil {
			return err
		}
		defer tw.close()
		fmt.Fprintf(stdout, "stand-in Twilio at http://%s (latency %s)\n", tw.addr, o.latency)
	}
	var bare *result
	if o.bare {
		b, cpu, err := loadBare(ctx, o)
		if err != nil {
			return err
		}
		bare = &b
		fmt.Fprintf(stdout, "bare handler: %s\n", b.line(nil))
		if cpu > 0 {
			fmt.Fprintf(stdout, "bare handler CPU: %.0f µs per request\n", float64(cpu)/float64(time.Microsecond))
		}
	}
	before := goroutines(o.debug)
	svcCPU0, ownCPU0 := cpuTime(o.pid), ownCPU()
	stopFlood := flood(ctx, o)
	res := load(ctx, o, o.target, tw)
	flooded := stopFlood()
	fmt.Fprintf(stdout, "service (%s, %s): %s\n", o.mode, loopName(o), res.line(bare))
	if o.flood > 0 {
		fmt.Fprintf(stdout, "meanwhile %d connections sent %d forged requests (%.0f req/s)\n", o.flood, flooded.sent, flooded.rps())
	}
	row := csvRow{o: o, res: res}
	if tw != nil {
		done, p50, p99 := tw.completions()
		row.completed, row.c50, row.c99 = done, p50, p99
		fmt.Fprintf(stdout, "completed opt-ins: %d of %d accepted; completion p50 %s p99 %s", done, res.accepted, p50, p99)
		if o.latency > 0 {
			fmt.Fprintf(stdout, " (p99 = %.2f × the upstream latency)", float64(p99)/float64(o.latency))
		}
		fmt.Fprintln(stdout)
	}
	// CPU from the start of the load to the last completion: what each request cost the service, and
	// what this process (client, stand-in, flood) took of the same cores.
	if svcCPU1 := cpuTime(o.pid); svcCPU0 >= 0 && svcCPU1 >= 0 && res.sent > 0 {
		row.cpuUs = float64(svcCPU1-svcCPU0) / float64(time.Microsecond) / float64(res.sent)
		fmt.Fprintf(stdout, "service CPU: %s = %.0f µs per request; load generator CPU: %s\n",
			(svcCPU1 - svcCPU0).Round(10*time.Millisecond), row.cpuUs, (ownCPU() - ownCPU0).Round(10*time.Millisecond))
	}
	if o.debug != "" {
		after, took := settle(o.debug, before, 10*time.Second)
		fmt.Fprintf(stdout, "service goroutines: %d before, %d after (%s after the load)\n", before, after, took.Round(100*time.Millisecond))
	}
	if o.pid > 0 {
		if kb, err := peakRSS(o.pid); err == nil {
			row.rssMB = float64(kb) / 1024
			fmt.Fprintf(stdout, "service peak RSS: %.1f MB\n", float64(kb)/1024)
		} else {
			fmt.Fprintf(stdout, "service peak RSS: unknown (%v)\n", err)
		}
	}
	if o.csv != "" {
		return row.append(o.csv)
	}
	return nil
}

func loopName(o options) string {
	if o.rate > 0 {
		return fmt.Sprintf("open loop %d/s", o.rate)
	}
	return fmt.Sprintf("closed loop, %d connections", o.conns)
}

// loopbackOnly refuses a target off this machine: the tool is for measuring, not for load on others.
func loopbackOnly(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("not a URL: %q", raw)
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%s is not a loopback address", host)
}

// result is what one load measured.
type result struct {
	sent, accepted, errors int
	elapsed                time.Duration
	latencies              []time.Duration
}

func (r result) rps() float64 { return float64(r.sent) / r.elapsed.Seconds() }

func (r result) line(limit *result) string {
	s := fmt.Sprintf("%d requests in %s = %.0f req/s", r.sent, r.elapsed.Round(time.Millisecond), r.rps())
	if limit != nil && limit.rps() > 0 {
		s += fmt.Sprintf(" (%.2f× the bare handler)", r.rps()/limit.rps())
	}
	p := percentiles(r.latencies, 0.5, 0.99, 0.999)
	return s + fmt.Sprintf("; latency p50 %s p99 %s p99.9 %s; errors %d", p[0], p[1], p[2], r.errors)
}

func percentiles(ds []time.Duration, qs ...float64) []time.Duration {
	out := make([]time.Duration, len(qs))
	if len(ds) == 0 {
		return out
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	for i, q := range qs {
		out[i] = s[min(int(q*float64(len(s))), len(s)-1)].Round(time.Microsecond)
	}
	return out
}

// loadBare measures a handler that only answers 403, on loopback, with the same load; cpu is what that
// cost its process per request (0 when it shares this one).
func loadBare(ctx context.Context, o options) (res result, cpu time.Duration, err error) {
	addr, stop, pid, err := startBare(ctx, o.bareInProcess)
	if err != nil {
		return result{}, 0, err
	}
	defer stop()
	bo := o
	bo.mode = "forged"
	before := cpuTime(pid)
	res = load(ctx, bo, "http://"+addr+"/webhooks/conversations", nil)
	if after := cpuTime(pid); before >= 0 && after >= 0 && res.sent > 0 {
		cpu = (after - before) / time.Duration(res.sent)
	}
	return res, cpu, nil
}

// load sends the requests and measures them.
func load(ctx context.Context, o options, target string, tw *standIn) result {
	ctx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: max(o.conns, 64), MaxConnsPerHost: 0}, Timeout: 10 * time.Second}
	// Our idle connections would hold goroutines of the service after the load: close them.
	defer client.CloseIdleConnections()
	var (
		next      atomic.Int64
		mu        sync.Mutex
		res       result
		wg        sync.WaitGroup
		runPrefix = time.Now().UnixNano() // conversations of one run do not collide with an earlier run's
	)
	one := func() bool {
		i := next.Add(1)
		if int(i) > o.n || ctx.Err() != nil {
			return false
		}
		req, conv := buildRequest(o, target, runPrefix, i)
		if tw != nil && conv != "" {
			tw.expect(conv)
		}
		began := time.Now()
		resp, err := client.Do(req)
		d := time.Since(began)
		ok := err == nil && (resp.StatusCode == 200 || (o.mode == "forged" && resp.StatusCode == 403))
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		mu.Lock()
		res.sent++
		res.latencies = append(res.latencies, d)
		if !ok {
			res.errors++
		} else if o.mode == "accept" {
			res.accepted++
		}
		mu.Unlock()
		return true
	}
	began := time.Now()
	if o.rate > 0 {
		// Request i leaves at began + i/rate: when this process falls behind it catches up rather than
		// offering less (a ticker drops the ticks a busy receiver misses).
		timer := time.NewTimer(0)
		defer timer.Stop()
	open:
		for i := range o.n {
			if wait := time.Until(began.Add(time.Duration(i) * time.Second / time.Duration(o.rate))); wait > 0 {
				timer.Reset(wait)
				select {
				case <-ctx.Done():
					break open
				case <-timer.C:
				}
			} else if ctx.Err() != nil {
				break
			}
			wg.Go(func() { one() })
		}
	} else {
		for range o.conns {
			wg.Go(func() {
				for one() {
				}
			})
		}
	}
	wg.Wait()
	res.elapsed = time.Since(began)
	return res
}

// buildRequest makes request i: a new conversation (accept), the same event (duplicate), or a forgery.
func buildRequest(o options, target string, runPrefix, i int64) (*http.Request, string) {
	conv := "CH00000000000000000000000000000001"
	if o.mode == "accept" {
		conv = fmt.Sprintf("CH%016x%016x", runPrefix, i)
	}
	params := url.Values{
		"AccountSid": {"AC00000000000000000000000000000001"}, "EventType": {"onMessageAdded"}, "ConversationSid": {conv},
		"MessageSid": {"IM00000000000000000000000000000001"}, "Author": {"whatsapp:+15550001111"}, "Body": {"Yes"},
		"ParticipantSid": {"MB00000000000000000000000000000001"}, "Index": {"1"}, "Source": {"WHATSAPP"}, "RetryCount": {"0"},
	}
	body := params.Encode()
	req, _ := http.NewRequest(http.MethodPost, target, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	// A forgery as an attacker would send it: well formed, made with a key that is not the token, so
	// that the service must read, parse and check it in full to refuse it.
	key := forgeryKey
	if o.mode != "forged" {
		key = o.token
	}
	sig := signature.Compute(key, o.signURL, params)
	req.Header.Set("X-Twilio-Signature", sig)
	if o.mode != "accept" {
		conv = ""
	}
	return req, conv
}

// forgeryKey signs the forged requests.
const forgeryKey = "not-the-auth-token-of-the-service"

// flood sends forged requests on o.flood connections until the returned func is called.
func flood(ctx context.Context, o options) func() result {
	if o.flood == 0 {
		return func() result { return result{} }
	}
	fo := o
	fo.mode, fo.conns, fo.rate, fo.n = "forged", o.flood, 0, 1<<31-1
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan result, 1)
	go func() { done <- load(ctx, fo, o.target, nil) }()
	return func() result {
		cancel()
		return <-done
	}
}

// goroutines reads the service's goroutine count from its pprof endpoint; -1 when it cannot.
// settle polls the service's goroutines until they are back near before (the last opt-ins done, the
// connections closed) or wait has passed, and returns the last count and when it was taken.
func settle(debug string, before int, wait time.Duration) (int, time.Duration) {
	start := time.Now()
	for {
		n := goroutines(debug)
		if n <= before+8 || time.Since(start) >= wait {
			return n, time.Since(start)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func goroutines(debug string) int {
	if debug == "" || loopbackOnly("http://"+debug) != nil {
		return -1
	}
	resp, err := http.Get("http://" + debug + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	first, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	var n int
	if _, err := fmt.Sscanf(string(first), "goroutine profile: total %d", &n); err != nil {
		return -1
	}
	return n
}

// cpuTime reads the CPU time (user and system, all threads) a process has used; -1 when it cannot.
func cpuTime(pid int) time.Duration {
	if pid <= 0 {
		return -1
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	// Fields after the command name, which is in parentheses and may hold spaces: utime and stime are
	// the 12th and 13th, in clock ticks of 1/100 s (USER_HZ).
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return -1
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// ownCPU is this process's CPU time so far.
func ownCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// peakRSS reads a process's high-water resident set (VmHWM), in KiB.
func peakRSS(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
		}
	}
	return 0, errors.New("no VmHWM")
}
