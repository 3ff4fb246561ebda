package poll

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestUntilReturnsOnceTheConditionHolds(t *testing.T) {
	var n atomic.Int32
	go func() {
		for range 3 {
			n.Add(1)
		}
	}()
	Until(t, "three", func() bool { return n.Load() == 3 })
}

// fatalTB records a failure instead of stopping the test.
type fatalTB struct {
	testing.TB
	failed string
}

func (f *fatalTB) Helper() {}
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.failed = format
}

func TestWithinFailsAtItsDeadline(t *testing.T) {
	tb := &fatalTB{TB: t}
	checks := 0
	Within(tb, 10*time.Millisecond, "never", func() bool { checks++; return tb.failed != "" })
	if tb.failed == "" || checks < 2 {
		t.Errorf("failed %q after %d checks, want a failure after more than one", tb.failed, checks)
	}
}
