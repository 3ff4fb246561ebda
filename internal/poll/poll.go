// Package poll waits in tests for something another goroutine, process or replica makes true: it
// checks a condition until it holds or a deadline passes, so that a test never sleeps for a guessed
// time. Tests only.
package poll

import (
	"testing"
	"time"
)

// Deadline is how long Until waits: long enough for a loaded CI machine, never reached by a test
// that passes.
const Deadline = 30 * time.Second

// interval is the pause between two checks.
const interval = 2 * time.Millisecond

// Until checks cond until it holds, failing the test (naming what it waited for) after Deadline.
func Until(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	Within(tb, Deadline, what, cond)
}

// Within is Until with its own deadline, for what is bounded tighter (or looser) than Deadline.
func Within(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("waited %v for %s", d, what)
		}
		time.Sleep(interval)
	}
}
