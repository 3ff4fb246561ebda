package redisstore

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Revocations is the console.Revocations shared by every replica: a key per logged-out session that
// expires when the session would have.
type Revocations struct{ rdb redis.UniversalClient }

// Revocations returns the revocation store on the same Redis.
func (s *Store) Revocations() *Revocations { return &Revocations{rdb: s.rdb} }

const revokedPrefix = "optin:revoked:"

// Revoke records key until until.
func (s *Revocations) Revoke(ctx context.Context, key string, until time.Time) error {
	if !time.Now().Before(until) {
		return nil
	}
	if err := s.rdb.SetArgs(ctx, revokedPrefix+key, "1", redis.SetArgs{ExpireAt: until}).Err(); err != nil {
		return fmt.Errorf("revoking a session: %w", err)
	}
	return nil
}

// Revoked reports whether key is revoked.
func (s *Revocations) Revoked(ctx context.Context, key string) (bool, error) {
	n, err := s.rdb.Exists(ctx, revokedPrefix+key).Result()
	if err != nil {
		return false, fmt.Errorf("reading session revocations: %w", err)
	}
	return n == 1, nil
}
