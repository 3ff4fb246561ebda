package redisstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/optinkit/optin/internal/chat"
)

// Windows is the chat.Windows shared by every replica: one sorted set of pairs scored by their last
// message's time in milliseconds, raised only (ZADD GT), pruned after chat.WindowMemory.
type Windows struct{ rdb redis.UniversalClient }

var _ chat.Windows = (*Windows)(nil)

// Windows returns the window store on the same Redis.
func (s *Store) Windows() *Windows { return &Windows{rdb: s.rdb} }

const windowsKey = "optin:windows"

// Opened records that address wrote to proxy at at, unless a later message is recorded.
func (s *Windows) Opened(ctx context.Context, address, proxy string, at time.Time) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.ZAddGT(ctx, windowsKey, redis.Z{Score: float64(at.UnixMilli()), Member: address + "|" + proxy})
		p.ZRemRangeByScore(ctx, windowsKey, "-inf", fmt.Sprintf("(%d", time.Now().Add(-chat.WindowMemory).UnixMilli()))
		return nil
	})
	if err != nil {
		return fmt.Errorf("recording a window: %w", err)
	}
	return nil
}

// Window returns the pair's window.
func (s *Windows) Window(ctx context.Context, address, proxy string) (chat.Window, error) {
	ms, err := s.rdb.ZScore(ctx, windowsKey, address+"|"+proxy).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return chat.Window{}, nil
	case err != nil:
		return chat.Window{}, fmt.Errorf("reading a window: %w", err)
	}
	return chat.Window{LastInbound: time.UnixMilli(int64(ms)).UTC()}, nil
}
