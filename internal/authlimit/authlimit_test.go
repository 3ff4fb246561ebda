package authlimit

import (
	"net/http/httptest"
	"testing"
	"time"
)

func TestKey(t *testing.T) {
	for _, tt := range []struct {
		name   string
		trust  bool
		remote string
		xff    []string
		want   string
	}{
		{"IPv4", false, "192.0.2.1:40000", nil, "192.0.2.1"},
		{"IPv6 per /64", false, "[2001:db8:1:2:aaaa:bbbb:cccc:dddd]:40000", nil, "2001:db8:1:2::/64"},
		{"another address of the same /64", false, "[2001:db8:1:2::1]:40000", nil, "2001:db8:1:2::/64"},
		{"IPv6 with a zone", false, "[fe80::1%eth0]:40000", nil, "fe80::/64"},
		{"IPv4 mapped in IPv6", false, "[::ffff:192.0.2.1]:40000", nil, "192.0.2.1"},
		{"no port", false, "192.0.2.1", nil, "192.0.2.1"},
		{"X-Forwarded-For untrusted", false, "192.0.2.1:40000", []string{"198.51.100.7"}, "192.0.2.1"},
		{"X-Forwarded-For trusted: the last hop", true, "192.0.2.1:40000", []string{"203.0.113.9, 198.51.100.7"}, "198.51.100.7"},
		{"X-Forwarded-For trusted: the last header", true, "192.0.2.1:40000", []string{"203.0.113.9", "198.51.100.7"}, "198.51.100.7"},
		{"X-Forwarded-For trusted: IPv6 per /64", true, "192.0.2.1:40000", []string{"2001:db8:9::5"}, "2001:db8:9::/64"},
		{"X-Forwarded-For trusted: with a port", true, "192.0.2.1:40000", []string{"[2001:db8:9::5]:443"}, "2001:db8:9::/64"},
		{"X-Forwarded-For trusted but not an address", true, "192.0.2.1:40000", []string{"unknown"}, "192.0.2.1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tt.remote
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := New(DefaultBurst, DefaultEvery, tt.trust).Key(r); got != tt.want {
				t.Errorf("Key %q, want %q", got, tt.want)
			}
		})
	}
}

// A client fails burst times, then waits; failures answered 429 are not counted, and the budget fills
// up again at one failure per every.
func TestFailed(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	l := New(3, 2*time.Second, false)
	l.now = func() time.Time { return now }
	for i := range 3 {
		if wait := l.Failed("a"); wait != 0 {
			t.Fatalf("failure %d within the budget: wait %v", i+1, wait)
		}
	}
	for range 5 {
		if wait := l.Failed("a"); wait != 2*time.Second {
			t.Fatalf("beyond the budget: wait %v, want 2s", wait)
		}
	}
	if wait := l.Failed("b"); wait != 0 {
		t.Errorf("another client waits %v", wait)
	}
	now = now.Add(1500 * time.Millisecond)
	if wait := l.Failed("a"); wait != 500*time.Millisecond {
		t.Errorf("after 1.5 s: wait %v, want 500ms (the refused failures were not counted)", wait)
	}
	now = now.Add(500 * time.Millisecond)
	if wait := l.Failed("a"); wait != 0 {
		t.Errorf("after 2 s: wait %v, want one more failure counted", wait)
	}
	if wait := l.Failed("a"); wait != 2*time.Second {
		t.Errorf("then: wait %v, want 2s", wait)
	}
}

// Clients whose budget filled up again are forgotten.
func TestSweep(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	l := New(2, time.Second, false)
	l.now = func() time.Time { return now }
	l.Failed("a")
	now = now.Add(2 * time.Minute)
	l.Failed("b")
	if _, ok := l.clients["a"]; ok || len(l.clients) != 1 {
		t.Errorf("clients after the sweep: %v", l.clients)
	}
}

func TestRetryAfter(t *testing.T) {
	for d, want := range map[time.Duration]string{0: "1", 300 * time.Millisecond: "1", time.Second: "1", 2100 * time.Millisecond: "3"} {
		if got := RetryAfter(d); got != want {
			t.Errorf("RetryAfter(%v) = %s, want %s", d, got, want)
		}
	}
}
