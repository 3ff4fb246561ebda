package twiliocall

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

var fast = RetryPolicy{InitialInterval: time.Millisecond, MaxInterval: 2 * time.Millisecond, MaxAttempts: 4, CallTimeout: time.Second}

func callErr(kind FailureKind, status, code int) error {
	return &CallError{Op: "test", Kind: kind, Status: status, Code: code, Err: errors.New("boom")}
}

func TestRunDelay(t *testing.T) {
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 4: 8 * time.Second, 20: 5 * time.Minute} {
		for range 50 {
			if d := RunDelay(n, nil); d < want/2 || d > want {
				t.Fatalf("RunDelay(%d) = %v, want within [%v, %v]", n, d, want/2, want)
			}
		}
	}
	if d := RunDelay(1, &CallError{Kind: Retryable, RetryAfter: time.Minute}); d != time.Minute {
		t.Errorf("Retry-After not honoured: %v", d)
	}
}

// A conversation already closed (50377) or gone (404) counts as closed; a transient failure is retried;
// a permanent one is not.
func TestClose(t *testing.T) {
	for _, tt := range []struct {
		name  string
		fails []error
		calls int
		ok    bool
	}{
		{"closed", nil, 1, true},
		{"already closed", []error{callErr(Permanent, 400, CodeClosed)}, 1, true},
		{"gone", []error{callErr(Permanent, 404, CodeNotFound)}, 1, true},
		{"retried", []error{callErr(Retryable, 503, 0), callErr(Uncertain, 0, 0)}, 3, true},
		{"refused", []error{callErr(Permanent, 401, 20003)}, 1, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			err := Close(t.Context(), fast, nil, "close", func(context.Context) error {
				calls++
				if calls <= len(tt.fails) {
					return tt.fails[calls-1]
				}
				return nil
			})
			if (err == nil) != tt.ok || calls != tt.calls {
				t.Errorf("err %v after %d calls; want ok=%v after %d", err, calls, tt.ok, tt.calls)
			}
		})
	}
}

// An uncertain create that took effect is found by its marker, not repeated; a retryable one is
// created again without looking; a search that fails for good creates rather than fails.
func TestCreateOnce(t *testing.T) {
	type posted struct {
		msgs    []Posted
		creates int
		looks   int
	}
	run := func(lookFirst bool, fails []error, applied bool, recentErr error) (string, error, *posted) {
		p := &posted{}
		recent := func(context.Context, int) ([]Posted, error) {
			p.looks++
			if recentErr != nil {
				return nil, recentErr
			}
			return p.msgs, nil
		}
		create := func(context.Context) (string, error) {
			p.creates++
			sid := fmt.Sprintf("IM%d", p.creates)
			if p.creates <= len(fails) {
				if applied {
					p.msgs = append(p.msgs, Posted{Sid: sid, Attributes: "mark"})
				}
				return "", fails[p.creates-1]
			}
			p.msgs = append(p.msgs, Posted{Sid: sid, Attributes: "mark"})
			return sid, nil
		}
		sid, err := CreateOnce(t.Context(), fast, nil, "wait", lookFirst, recent, func(a string) bool { return a == "mark" }, create)
		return sid, err, p
	}
	if sid, err, p := run(false, []error{callErr(Uncertain, 0, 0)}, true, nil); sid != "IM1" || err != nil || p.creates != 1 || p.looks != 1 {
		t.Errorf("uncertain and applied: %s %v %+v", sid, err, p)
	}
	if sid, err, p := run(false, []error{callErr(Retryable, 429, 20429)}, false, nil); sid != "IM2" || err != nil || p.creates != 2 || p.looks != 0 {
		t.Errorf("retryable: %s %v %+v", sid, err, p)
	}
	if sid, err, p := run(true, nil, false, callErr(Permanent, 404, CodeNotFound)); sid != "IM1" || err != nil || p.creates != 1 || p.looks != 1 {
		t.Errorf("search refused: %s %v %+v", sid, err, p)
	}
	if _, err, p := run(false, []error{callErr(Permanent, 400, 63016)}, false, nil); Code(err) != 63016 || p.creates != 1 {
		t.Errorf("permanent: %v %+v", err, p)
	}
}

func TestPermanently(t *testing.T) {
	perm, retry := callErr(Permanent, 400, 1), callErr(Retryable, 503, 0)
	for err, want := range map[error]bool{
		perm:                                   true,
		fmt.Errorf("step: %w", perm):           true,
		errors.Join(perm, perm):                true,
		errors.Join(perm, retry):               false,
		errors.New("store down"):               false,
		fmt.Errorf("x: %w", errors.Join(perm)): true,
	} {
		if got := Permanently(err); got != want {
			t.Errorf("Permanently(%v) = %v, want %v", err, got, want)
		}
	}
	if KindOf(errors.New("?")) != Uncertain || Code(fmt.Errorf("x: %w", perm)) != 1 || !IsNotFound(callErr(Permanent, 404, 0)) {
		t.Error("helpers")
	}
}
