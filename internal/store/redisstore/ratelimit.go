package redisstore

import (
	"context"
	"fmt"
	"time"

	"github.com/go-redis/redis_rate/v10"
)

// Limiter is a token bucket shared by every replica (go-redis/redis_rate, GCRA in one Redis script).
type Limiter struct {
	limiter *redis_rate.Limiter
	key     string
	limit   redis_rate.Limit
}

// Limiter returns a bucket named key that lets perSecond calls through each second, burst at once.
func (s *Store) Limiter(key string, perSecond, burst int) *Limiter {
	return &Limiter{limiter: redis_rate.NewLimiter(s.rdb), key: "optin:rate:" + key,
		limit: redis_rate.Limit{Rate: perSecond, Burst: burst, Period: time.Second}}
}

// Wait blocks until the bucket lets one call through, or ctx ends.
func (l *Limiter) Wait(ctx context.Context) error {
	for {
		res, err := l.limiter.Allow(ctx, l.key, l.limit)
		if err != nil {
			return fmt.Errorf("rate limiter: %w", err)
		}
		if res.Allowed > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the rate limiter: %w", ctx.Err())
		case <-time.After(res.RetryAfter):
		}
	}
}
