package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// standIn is the smallest Twilio REST API the opt-in needs — create message, list and delete scoped
// webhooks — answering after latency, and noting when each conversation's opt-in completed (its
// webhook deleted).
type standIn struct {
	addr    string
	srv     *http.Server
	latency time.Duration

	mu       sync.Mutex
	sent     map[string]time.Time
	complete []time.Duration
}

func startStandIn(addr string, latency time.Duration) (*standIn, error) {
	if err := loopbackOnly("http://" + addr); err != nil {
		return nil, fmt.Errorf("-twilio: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("-twilio: %w", err)
	}
	s := &standIn{addr: ln.Addr().String(), latency: latency, sent: map[string]time.Time{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/Conversations/{conv}/Messages", s.slow(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"sid":"IM%032d","conversation_sid":%q,"index":1,"attributes":"{}"}`, time.Now().UnixNano()%1e9, r.PathValue("conv"))
	}))
	mux.HandleFunc("GET /v1/Conversations/{conv}/Webhooks", s.slow(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"webhooks":[{"sid":"WH00000000000000000000000000000001","conversation_sid":%q,"target":"webhook","configuration":{"url":"http://x","method":"POST","filters":["onMessageAdded"]}}],"meta":{"page":0,"page_size":5,"key":"webhooks","next_page_url":null,"previous_page_url":null}}`, r.PathValue("conv"))
	}))
	mux.HandleFunc("DELETE /v1/Conversations/{conv}/Webhooks/{sid}", s.slow(func(w http.ResponseWriter, r *http.Request) {
		s.done(r.PathValue("conv"))
		w.WriteHeader(http.StatusNoContent)
	}))
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

func (s *standIn) slow(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.latency > 0 {
			select {
			case <-time.After(s.latency):
			case <-r.Context().Done():
				return
			}
		}
		h(w, r)
	}
}

// expect notes when the webhook that starts conv's opt-in was sent.
func (s *standIn) expect(conv string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent[conv] = time.Now()
}

func (s *standIn) done(conv string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.sent[strings.TrimSpace(conv)]; ok {
		s.complete = append(s.complete, time.Since(t))
		delete(s.sent, conv)
	}
}

// completions waits briefly for opt-ins in flight, then reports how many completed and how fast.
func (s *standIn) completions() (int, time.Duration, time.Duration) {
	deadline := time.Now().Add(10*time.Second + 10*s.latency)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		left := len(s.sent)
		s.mu.Unlock()
		if left == 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := percentiles(s.complete, 0.5, 0.99)
	return len(s.complete), p[0], p[1]
}

func (s *standIn) close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
}
