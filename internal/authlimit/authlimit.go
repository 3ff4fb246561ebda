// Package authlimit slows the guessing of admin tokens: each client may fail to authenticate a few
// times at once, then once every few seconds; beyond that its attempts are refused before any token is
// compared, at the cost of one map lookup. Each replica counts its own clients.
package authlimit

import (
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Defaults: ten failures at once, then one every three seconds (about 1,200 an hour, against tokens of
// 2^80 guesses or more).
const (
	DefaultBurst = 10
	DefaultEvery = 3 * time.Second
)

// Limiter counts the failed authentications of each client.
type Limiter struct {
	burst      int
	every      time.Duration
	trustProxy bool
	now        func() time.Time

	mu      sync.Mutex
	clients map[string]*rate.Limiter
	swept   time.Time
}

// New returns a Limiter that lets a client fail burst times, then once per every. With trustProxy, a
// client is known by the address its proxy appended last to X-Forwarded-For (OPTIN_TRUST_PROXY_HEADERS),
// else by its connection's.
func New(burst int, every time.Duration, trustProxy bool) *Limiter {
	return &Limiter{burst: burst, every: every, trustProxy: trustProxy, now: time.Now, clients: map[string]*rate.Limiter{}}
}

// Key is the client of r as the Limiter knows it.
func (l *Limiter) Key(r *http.Request) string {
	if l.trustProxy {
		if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
			last := xff[len(xff)-1]
			if i := strings.LastIndexByte(last, ','); i >= 0 {
				last = last[i+1:]
			}
			if ip := strings.TrimSpace(last); ip != "" {
				return ip
			}
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// Wait is how long the client must wait before its next attempt is even looked at; 0: it may try now.
func (l *Limiter) Wait(key string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := l.clients[key]
	if !ok {
		return 0
	}
	now := l.now()
	tokens := lim.TokensAt(now)
	if tokens >= 1 {
		return 0
	}
	return time.Duration(math.Ceil((1 - tokens) * float64(l.every)))
}

// Failed counts a failed attempt of the client.
func (l *Limiter) Failed(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.sweep(now)
	lim, ok := l.clients[key]
	if !ok {
		lim = rate.NewLimiter(rate.Every(l.every), l.burst)
		l.clients[key] = lim
	}
	lim.AllowN(now, 1)
}

// sweep forgets the clients whose budget has filled up again, at most once a minute: the map holds
// only clients that failed lately. Callers hold l.mu.
func (l *Limiter) sweep(now time.Time) {
	if now.Sub(l.swept) < time.Minute {
		return
	}
	l.swept = now
	for key, lim := range l.clients {
		if lim.TokensAt(now) >= float64(l.burst) {
			delete(l.clients, key)
		}
	}
}

// RetryAfter is d as a Retry-After header value: whole seconds, at least one.
func RetryAfter(d time.Duration) string {
	return strconv.Itoa(max(int(math.Ceil(d.Seconds())), 1))
}
