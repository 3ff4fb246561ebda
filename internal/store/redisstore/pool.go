package redisstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/optinkit/optin/internal/numberpool"
)

// Pairs is the numberpool.Store shared by every replica: a key per leased pair holding its chat
// (optin:pair:<address>|<number>), a set of each chat's pairs, a count per number, and the last number of
// each address. The scripts name the keys; the constants below are the ones Go reads too.
type Pairs struct {
	rdb       *redis.Client
	retention time.Duration
}

var _ numberpool.Store = (*Pairs)(nil)

// Pairs returns the pair store on the same Redis. A lease lives until released, or at most retention
// (so that a release lost with a crash does not hold a pair for ever).
func (s *Store) Pairs() *Pairs { return &Pairs{rdb: s.rdb, retention: s.retention} }

const (
	lastPrefix = "optin:lastnumber:"
	inUseKey   = "optin:numbers:inuse"
)

// takePairs: ARGV = chat, ttl ms, then address, number for each pair. All or nothing.
var takePairs = redis.NewScript(`
local chat, ttl = ARGV[1], tonumber(ARGV[2])
for i = 3, #ARGV, 2 do
  local pair = ARGV[i] .. '|' .. ARGV[i+1]
  if redis.call('EXISTS', 'optin:pair:' .. pair) == 1 or redis.call('EXISTS', 'optin:pairblock:' .. pair) == 1 then
    return 0
  end
end
for i = 3, #ARGV, 2 do
  local pair = ARGV[i] .. '|' .. ARGV[i+1]
  redis.call('SET', 'optin:pair:' .. pair, chat, 'PX', ttl)
  redis.call('SADD', 'optin:chatpairs:' .. chat, pair)
  redis.call('PEXPIRE', 'optin:chatpairs:' .. chat, ttl)
  redis.call('HINCRBY', 'optin:numbers:inuse', ARGV[i+1], 1)
  redis.call('SET', 'optin:lastnumber:' .. ARGV[i], ARGV[i+1], 'PX', ttl)
end
return 1
`)

// releasePairs frees the pairs still leased to the chat and keeps the counts true.
var releasePairs = redis.NewScript(`
local chat = ARGV[1]
local pairs = redis.call('SMEMBERS', 'optin:chatpairs:' .. chat)
for _, pair in ipairs(pairs) do
  if redis.call('GET', 'optin:pair:' .. pair) == chat then
    redis.call('DEL', 'optin:pair:' .. pair)
    local number = string.sub(pair, string.find(pair, '|', 1, true) + 1)
    if redis.call('HINCRBY', 'optin:numbers:inuse', number, -1) <= 0 then
      redis.call('HDEL', 'optin:numbers:inuse', number)
    end
  end
end
redis.call('DEL', 'optin:chatpairs:' .. chat)
return #pairs
`)

// blockPair sets a pair aside for a while and drops its lease, keeping the count true.
var blockPair = redis.NewScript(`
local pair, ttl = ARGV[1] .. '|' .. ARGV[2], tonumber(ARGV[3])
redis.call('SET', 'optin:pairblock:' .. pair, '1', 'PX', ttl)
if redis.call('DEL', 'optin:pair:' .. pair) == 1 then
  if redis.call('HINCRBY', 'optin:numbers:inuse', ARGV[2], -1) <= 0 then
    redis.call('HDEL', 'optin:numbers:inuse', ARGV[2])
  end
end
return 1
`)

// Take leases every pair to chatID unless one is leased or blocked.
func (s *Pairs) Take(ctx context.Context, chatID string, pairs []numberpool.Pair) (bool, error) {
	args := []any{chatID, s.ttl().Milliseconds()}
	for _, p := range pairs {
		args = append(args, p.Address, p.Number)
	}
	n, err := takePairs.Run(ctx, s.rdb, nil, args...).Int()
	if err != nil {
		return false, fmt.Errorf("leasing pairs: %w", err)
	}
	return n == 1, nil
}

// Release frees the chat's pairs.
func (s *Pairs) Release(ctx context.Context, chatID string) error {
	if err := releasePairs.Run(ctx, s.rdb, nil, chatID).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("releasing pairs: %w", err)
	}
	return nil
}

// Block keeps a pair out for ttl.
func (s *Pairs) Block(ctx context.Context, p numberpool.Pair, ttl time.Duration) error {
	return blockPair.Run(ctx, s.rdb, nil, p.Address, p.Number, ttl.Milliseconds()).Err()
}

// Last returns the address's last number.
func (s *Pairs) Last(ctx context.Context, address string) (string, error) {
	n, err := s.rdb.Get(ctx, lastPrefix+address).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return n, err
}

// InUse counts leased pairs per number.
func (s *Pairs) InUse(ctx context.Context) (map[string]int, error) {
	raw, err := s.rdb.HGetAll(ctx, inUseKey).Result()
	if err != nil {
		return nil, err
	}
	out := make(map[string]int, len(raw))
	for k, v := range raw {
		var n int
		_, _ = fmt.Sscan(v, &n)
		out[k] = n
	}
	return out, nil
}

func (s *Pairs) ttl() time.Duration {
	if s.retention > 0 {
		return s.retention
	}
	return 30 * 24 * time.Hour
}
