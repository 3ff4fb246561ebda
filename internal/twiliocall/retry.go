package twiliocall

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/rs/zerolog"
)

// RetryPolicy bounds the retries of one REST call: exponential backoff with jitter, honouring Retry-After.
type RetryPolicy struct {
	InitialInterval time.Duration
	MaxInterval     time.Duration
	MaxAttempts     uint
	// MaxElapsed caps the time spent on one call, retries included.
	MaxElapsed time.Duration
	// CallTimeout caps a single attempt.
	CallTimeout time.Duration
}

// DefaultRetryPolicy rides out a short Twilio outage while keeping a stuck flow visible within minutes.
var DefaultRetryPolicy = RetryPolicy{
	InitialInterval: 250 * time.Millisecond,
	MaxInterval:     10 * time.Second,
	MaxAttempts:     8,
	MaxElapsed:      2 * time.Minute,
	CallTimeout:     10 * time.Second,
}

// Observer is told of each retry, for metrics.
type Observer interface{ Retry(op string) }

type noObserver struct{}

func (noObserver) Retry(string) {}

// WithDefaults fills what p leaves zero from DefaultRetryPolicy.
func (p RetryPolicy) WithDefaults() RetryPolicy {
	d := DefaultRetryPolicy
	if p.InitialInterval > 0 {
		d.InitialInterval = p.InitialInterval
	}
	if p.MaxInterval > 0 {
		d.MaxInterval = p.MaxInterval
	}
	if p.MaxAttempts > 0 {
		d.MaxAttempts = p.MaxAttempts
	}
	if p.MaxElapsed > 0 {
		d.MaxElapsed = p.MaxElapsed
	}
	if p.CallTimeout > 0 {
		d.CallTimeout = p.CallTimeout
	}
	return d
}

// Retry runs call until it succeeds, fails permanently or the policy gives up (or ctx ends). Errors that
// are not a *CallError are retried as uncertain: an adapter that cannot say is not trusted to have
// failed cleanly. obs, when not nil, is told of each retry.
func Retry[T any](ctx context.Context, p RetryPolicy, obs Observer, op string, call func(context.Context) (T, error)) (T, error) {
	if obs == nil {
		obs = noObserver{}
	}
	p = p.WithDefaults()
	attempt := 0
	operation := func() (T, error) {
		attempt++
		callCtx, cancel := context.WithTimeout(ctx, p.CallTimeout)
		defer cancel()
		v, err := call(callCtx)
		if err == nil {
			return v, nil
		}
		var ce *CallError
		if errors.As(err, &ce) {
			if ce.Kind == Permanent {
				return v, backoff.Permanent(err)
			}
			if ce.RetryAfter > 0 {
				return v, fmt.Errorf("%w (%w)", err, &backoff.RetryAfterError{Duration: ce.RetryAfter})
			}
		}
		return v, err
	}
	b := &backoff.ExponentialBackOff{
		InitialInterval:     p.InitialInterval,
		RandomizationFactor: 0.5,
		Multiplier:          2,
		MaxInterval:         p.MaxInterval,
	}
	notify := func(err error, wait time.Duration) {
		obs.Retry(op)
		zerolog.Ctx(ctx).Warn().Err(err).Str("op", op).Int("attempt", attempt).Dur("retry_in", wait).Msg("retrying")
	}
	return backoff.Retry(ctx, operation,
		backoff.WithBackOff(b),
		backoff.WithMaxTries(p.MaxAttempts),
		backoff.WithMaxElapsedTime(p.MaxElapsed),
		backoff.WithNotify(notify))
}

// RunDelay is how long a queue waits before running unfinished work again after its nth failed run
// (n from 1): exponential from 1 s, capped at 5 min, with full jitter — unless the failure carries a
// longer Retry-After.
func RunDelay(n int, err error) time.Duration {
	d := time.Second << min(max(n-1, 0), 9)
	d = min(d, 5*time.Minute)
	d = d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
	var ce *CallError
	if errors.As(err, &ce) && ce.RetryAfter > d {
		d = ce.RetryAfter
	}
	return d
}
