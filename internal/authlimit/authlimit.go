// Package authlimit bounds each client's failed authentications on the admin surface: a few at once,
// then one every few seconds; beyond that a wrong token is answered 429. A right token is never
// refused for failures, its own or another client's. Each replica counts its own clients.
package authlimit

import (
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Defaults: ten failures at once, then one every three seconds (about 1,200 an hour).
const (
	DefaultBurst = 10
	DefaultEvery = 3 * time.Second
)

// Limiter counts the failed authentications of each client. Callers compare the token first (it is
// cheap: a digest compared in constant time) and tell the Limiter only of failures, so that a client
// sharing an address with a stale script or a guesser — behind a NAT, a port-forward, a sidecar — is
// never locked out while it holds a right token. What keeps a token from being guessed is its
// strength (tokens.Check: 2^80 guesses or more), which no rate an HTTP server can answer at comes
// near; the Limiter keeps a failing client's answers cheap, few and loud.
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
// client is known by the address its proxy appended last to X-Forwarded-For, else by its connection's:
// trust it only on a listener every request reaches through that proxy.
func New(burst int, every time.Duration, trustProxy bool) *Limiter {
	return &Limiter{burst: burst, every: every, trustProxy: trustProxy, now: time.Now, clients: map[string]*rate.Limiter{}}
}

// Key is the client of r as the Limiter knows it: an IPv4 address, or an IPv6 client's /64 (one
// subscriber holds a whole /64, so its addresses are one client).
func (l *Limiter) Key(r *http.Request) string {
	if l.trustProxy {
		if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
			last := xff[len(xff)-1]
			if i := strings.LastIndexByte(last, ','); i >= 0 {
				last = last[i+1:]
			}
			if key, ok := keyOf(strings.TrimSpace(last)); ok {
				return key
			}
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if key, ok := keyOf(host); ok {
		return key
	}
	return host
}

// keyOf is the key of an address as a proxy or the connection gives it: an IP, with or without a
// port or brackets.
func keyOf(s string) (string, bool) {
	addr, err := netip.ParseAddr(s)
	if err != nil {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return "", false
		}
		addr = ap.Addr()
	}
	addr = addr.WithZone("").Unmap()
	if addr.Is4() {
		return addr.String(), true
	}
	p, _ := addr.Prefix(64)
	return p.String(), true
}

// Failed records a failed authentication of the client. It returns 0 when the failure was within the
// client's budget — answer it as a failure (401) — or else how long the client must wait before its
// next failure is counted — answer 429 with that Retry-After; such a failure is not counted.
func (l *Limiter) Failed(key string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.sweep(now)
	lim, ok := l.clients[key]
	if !ok {
		lim = rate.NewLimiter(rate.Every(l.every), l.burst)
		l.clients[key] = lim
	}
	if lim.AllowN(now, 1) {
		return 0
	}
	return time.Duration(math.Ceil((1 - lim.TokensAt(now)) * float64(l.every)))
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
