package main

import (
	"bufio"
	"fmt"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/optinkit/optin/internal/poll"
	"github.com/optinkit/optin/internal/redistest"
	"github.com/optinkit/optin/internal/store/redisstore"
)

// BenchmarkHoldToClosedWindow sends 2,000 messages of 1.5 KB from the customer to a rider whose
// WhatsApp window is closed, through the real server (its own process) and the emulator, which fails
// each delivery with 63016 and reports it. The server holds them for the rider up to the cap
// (OPTIN_HOLD_LIMIT 50 messages, OPTIN_HOLD_LIMIT_BYTES 64 KB: 42 such messages), dropping the oldest.
// The customer writes in batches of 50, each held (optin_messages_held_total) or its failure report
// refused (reported as reports-refused) before the next.
// After 250, 500, 1,000 and 2,000 messages, it
// reads the chat's held count, the server's live heap (pprof, gc=1) and, with Redis, the chat's value
// (MEMORY USAGE) and Redis' used_memory. It reports what the chat holds at the end and how much the
// heap and Redis grew from the 250th message to the 2,000th: bounded by the cap, that is about nothing.
func BenchmarkHoldToClosedWindow(b *testing.B) {
	for _, mode := range []string{"memory", "redis"} {
		b.Run(mode, func(b *testing.B) {
			for b.Loop() {
				var rs *redistest.Server
				extra := map[string]string{"OPTIN_NUDGE_CONTENT_SID": nudgeSid}
				if mode == "redis" {
					rs = redistest.Start(b)
					extra["OPTIN_REDIS_URL"] = rs.URL()
				}
				p := startHeapServer(b, extra)
				holdToClosedWindow(b, p, rs)
				p.stop()
			}
		})
	}
}

func holdToClosedWindow(b *testing.B, p *heapServer, rs *redistest.Server) {
	const id, cust, rider = "order-hold", "whatsapp:+15550001111", "whatsapp:+15560002222"
	body := fmt.Sprintf(`{"id":%q,"customer":{"address":%q,"name":"Ana"},"rider":{"address":%q,"name":"Bruno"},"ttl":"72h"}`, id, cust, rider)
	if code, out := p.call("POST", "/v1/chats", body); code != 201 {
		b.Fatalf("start: %d %s", code, out)
	}
	_, view := p.call("GET", "/v1/chats/"+id, "")
	number := between(view, `"customer":{"address":"whatsapp:+15550001111","proxy_address":"`, `"`)
	if _, err := p.emu.Inbound(cust, number, "Yes"); err != nil {
		b.Fatal(err)
	}
	if !p.await(id, `"state":"connected"`) {
		b.FailNow()
	}
	text := strings.Repeat("gate code 4411, blue building, third floor. ", 36)[:1536]
	sent, first := 0, map[string]int64{}
	for _, upto := range []int{250, 500, 1000, 2000} {
		for sent < upto {
			// In batches of 50, each held before the next is sent: at once, the reports beyond the 200
			// failed deliveries a chat keeps waiting would be dropped before being held (counted too).
			for range 50 {
				if _, err := p.emu.Inbound(cust, number, text); err != nil {
					b.Fatal(err)
				}
				sent++
			}
			accounted := func() bool { return p.metric("optin_messages_held_total")+float64(refusedReports(p)) >= float64(sent) }
			func() {
				defer func() {
					if !accounted() {
						b.Logf("%v of %d messages held (dropped %v):\n%s", p.metric("optin_messages_held_total"), sent, p.metric("optin_messages_dropped_total"), p.out)
					}
				}()
				poll.Within(b, time.Minute, fmt.Sprintf("%d messages held or their reports refused", sent), accounted)
			}()
		}
		_, view := p.call("GET", "/v1/chats/"+id, "")
		held, _ := strconv.Atoi(between(view, `"rider":{`, `}`)[strings.Index(between(view, `"rider":{`, `}`), `"held":`)+len(`"held":`):][:2])
		figures := map[string]int64{"held": int64(held), "heap": p.liveHeap()}
		if rs != nil {
			// The chat's document and its parts (held messages, settling, undelivered, handled).
			for _, key := range redisstore.ChatKeys(id) {
				figures["value"] += redisInt(b, rs, "MEMORY", "USAGE", key)
			}
			figures["redis"] = redisInfo(b, rs, "used_memory")
		}
		b.Logf("after %d messages: %v, dropped %v, reports refused %d", sent, figures, p.metric("optin_messages_dropped_total"), refusedReports(p))
		if upto == 250 {
			first = figures
		}
		if upto == 2000 {
			b.ReportMetric(float64(figures["held"]), "held")
			b.ReportMetric(float64(refusedReports(p)), "reports-refused")
			b.ReportMetric(float64(figures["heap"]-first["heap"]), "heap-B-250→2000")
			if rs != nil {
				b.ReportMetric(float64(figures["value"]), "chat-value-B")
				b.ReportMetric(float64(figures["redis"]-first["redis"]), "redis-B-250→2000")
			}
		}
	}
}

// refusedReports counts the failure reports the server did not answer 200 (Twilio would retry them;
// the emulator does not): a message whose report was refused is never held.
func refusedReports(p *heapServer) int {
	n := 0
	for _, c := range p.emu.WebhookCalls() {
		if c.EventType == "onDeliveryUpdated" && c.Status != http.StatusOK {
			n++
		}
	}
	return n
}

// between returns what s holds between from and to, "" when it holds no from.
func between(s, from, to string) string {
	_, rest, ok := strings.Cut(s, from)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, to)
	return v
}

// metric sums a counter of the server's /metrics over its labels.
func (p *heapServer) metric(name string) float64 {
	resp, err := http.Get(p.base + "/metrics")
	if err != nil {
		p.b.Fatal(err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") {
			continue
		}
		v, _ := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		sum += v
	}
	return sum
}

func redisInt(b *testing.B, rs *redistest.Server, args ...string) int64 {
	out, err := exec.Command("redis-cli", append([]string{"-p", strconv.Itoa(rs.Port)}, args...)...).Output()
	if err != nil {
		b.Fatal(err)
	}
	if strings.TrimSpace(string(out)) == "" {
		return 0 // no such key (a part the chat has none of)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		b.Fatalf("redis-cli %v: %q", args, out)
	}
	return n
}

func redisInfo(b *testing.B, rs *redistest.Server, field string) int64 {
	out, err := exec.Command("redis-cli", "-p", strconv.Itoa(rs.Port), "INFO", "memory").Output()
	if err != nil {
		b.Fatal(err)
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(between(string(out), field+":", "\n")), 10, 64)
	return n
}
