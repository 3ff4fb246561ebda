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
// (optin:pair:<address>|<number>), a set of each chat's pairs, per number a sorted set of its leased
// pairs by expiry (the counts are derived from it, so a lease that lapses stops counting), the last
// number of each address, and the index of the chat that last took each pair, read bare
// (optin:pairchat:<number>|<address>, kept beyond the release for the retention). The scripts name the keys; the constants below are the ones Go reads too.
type Pairs struct {
	rdb       redis.UniversalClient
	retention time.Duration
	// sync waits for the configured replicas after a lease is taken (see Chats.sync).
	sync func(context.Context) error
}

var _ numberpool.IndexedStore = (*Pairs)(nil)

// Pairs returns the pair store on the same Redis. A lease lives until released, or at most retention
// (so that a release lost with a crash does not hold a pair for ever).
func (s *Store) Pairs() *Pairs { return &Pairs{rdb: s.rdb, retention: s.retention, sync: s.Sync} }

const (
	lastPrefix     = "optin:lastnumber:"
	pairChatPrefix = "optin:pairchat:"
)

// takePairs: ARGV = chat, ttl ms, now ms, then address, number for each pair. All or nothing.
var takePairs = redis.NewScript(`
local chat, ttl, now = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local function bare(a) return (string.gsub(a, '^%a+:', '', 1)) end
for i = 4, #ARGV, 2 do
  local pair = ARGV[i] .. '|' .. ARGV[i+1]
  if redis.call('EXISTS', 'optin:pair:' .. pair) == 1 or redis.call('EXISTS', 'optin:pairblock:' .. pair) == 1 then
    return 0
  end
end
for i = 4, #ARGV, 2 do
  local pair = ARGV[i] .. '|' .. ARGV[i+1]
  redis.call('SET', 'optin:pair:' .. pair, chat, 'PX', ttl)
  redis.call('SADD', 'optin:chatpairs:' .. chat, pair)
  redis.call('PEXPIRE', 'optin:chatpairs:' .. chat, ttl)
  redis.call('SADD', 'optin:numbers', ARGV[i+1])
  redis.call('ZADD', 'optin:numberpairs:' .. ARGV[i+1], now + ttl, ARGV[i])
  redis.call('SET', 'optin:lastnumber:' .. ARGV[i], ARGV[i+1], 'PX', ttl)
  redis.call('SET', 'optin:pairchat:' .. bare(ARGV[i+1]) .. '|' .. bare(ARGV[i]), chat, 'PX', ttl)
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
    local bar = string.find(pair, '|', 1, true)
    redis.call('ZREM', 'optin:numberpairs:' .. string.sub(pair, bar + 1), string.sub(pair, 1, bar - 1))
  end
end
redis.call('DEL', 'optin:chatpairs:' .. chat)
return #pairs
`)

// releaseAddress frees the pairs of one address still leased to the chat: ARGV = chat, address.
var releaseAddress = redis.NewScript(`
local chat, address = ARGV[1], ARGV[2]
local n = 0
for _, pair in ipairs(redis.call('SMEMBERS', 'optin:chatpairs:' .. chat)) do
  local bar = string.find(pair, '|', 1, true)
  if string.sub(pair, 1, bar - 1) == address then
    if redis.call('GET', 'optin:pair:' .. pair) == chat then
      redis.call('DEL', 'optin:pair:' .. pair)
      redis.call('ZREM', 'optin:numberpairs:' .. string.sub(pair, bar + 1), address)
    end
    redis.call('SREM', 'optin:chatpairs:' .. chat, pair)
    n = n + 1
  end
end
return n
`)

// renewPairs starts the term of the chat's live leases again, and of their index entries: ARGV = chat,
// ttl ms, now ms.
var renewPairs = redis.NewScript(`
local chat, ttl, now = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local function bare(a) return (string.gsub(a, '^%a+:', '', 1)) end
local pairs = redis.call('SMEMBERS', 'optin:chatpairs:' .. chat)
for _, pair in ipairs(pairs) do
  if redis.call('GET', 'optin:pair:' .. pair) == chat then
    redis.call('PEXPIRE', 'optin:pair:' .. pair, ttl)
    local bar = string.find(pair, '|', 1, true)
    redis.call('ZADD', 'optin:numberpairs:' .. string.sub(pair, bar + 1), now + ttl, string.sub(pair, 1, bar - 1))
    local index = 'optin:pairchat:' .. bare(string.sub(pair, bar + 1)) .. '|' .. bare(string.sub(pair, 1, bar - 1))
    if redis.call('GET', index) == chat then
      redis.call('PEXPIRE', index, ttl)
    end
  end
end
if #pairs > 0 then
  redis.call('PEXPIRE', 'optin:chatpairs:' .. chat, ttl)
end
return #pairs
`)

// blockPair sets a pair aside for a while and drops its lease.
var blockPair = redis.NewScript(`
local pair, ttl = ARGV[1] .. '|' .. ARGV[2], tonumber(ARGV[3])
redis.call('SET', 'optin:pairblock:' .. pair, '1', 'PX', ttl)
redis.call('DEL', 'optin:pair:' .. pair)
redis.call('ZREM', 'optin:numberpairs:' .. ARGV[2], ARGV[1])
return 1
`)

// inUse drops the lapsed leases of every number and counts the live ones: ARGV = now ms; the answer
// is number, count, number, count….
var inUse = redis.NewScript(`
local now = tonumber(ARGV[1])
local out = {}
for _, n in ipairs(redis.call('SMEMBERS', 'optin:numbers')) do
  local key = 'optin:numberpairs:' .. n
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  local c = redis.call('ZCARD', key)
  if c > 0 then
    table.insert(out, n)
    table.insert(out, c)
  end
end
return out
`)

// Take leases every pair to chatID unless one is leased or blocked.
func (s *Pairs) Take(ctx context.Context, chatID string, pairs []numberpool.Pair) (bool, error) {
	args := []any{chatID, s.ttl().Milliseconds(), time.Now().UnixMilli()}
	for _, p := range pairs {
		args = append(args, p.Address, p.Number)
	}
	n, err := takePairs.Run(ctx, s.rdb, nil, args...).Int()
	if err != nil {
		return false, fmt.Errorf("leasing pairs: %w", err)
	}
	if n != 1 {
		return false, nil
	}
	if err := s.sync(ctx); err != nil {
		return false, fmt.Errorf("leasing pairs: %w", err)
	}
	return true, nil
}

// Release frees the chat's pairs.
func (s *Pairs) Release(ctx context.Context, chatID string) error {
	if err := releasePairs.Run(ctx, s.rdb, nil, chatID).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("releasing pairs: %w", err)
	}
	return nil
}

// ReleaseAddress frees the address's pairs leased to chatID.
func (s *Pairs) ReleaseAddress(ctx context.Context, chatID, address string) error {
	if err := releaseAddress.Run(ctx, s.rdb, nil, chatID, address).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("releasing an address's pairs: %w", err)
	}
	return nil
}

// Renew starts the term of the chat's live leases again.
func (s *Pairs) Renew(ctx context.Context, chatID string) error {
	if err := renewPairs.Run(ctx, s.rdb, nil, chatID, s.ttl().Milliseconds(), time.Now().UnixMilli()).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("renewing pairs: %w", err)
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

// ChatOf returns the chat that last took the pair (number, address), read bare: one GET.
func (s *Pairs) ChatOf(ctx context.Context, number, address string) (string, error) {
	id, err := s.rdb.Get(ctx, pairChatPrefix+numberpool.Bare(number)+"|"+numberpool.Bare(address)).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("finding a pair's chat: %w", err)
	}
	return id, nil
}

// InUse counts the live leases per number: derived from the leases (those that lapsed are dropped
// first), so the counts cannot drift from them.
func (s *Pairs) InUse(ctx context.Context) (map[string]int, error) {
	raw, err := inUse.Run(ctx, s.rdb, nil, time.Now().UnixMilli()).Slice()
	if err != nil {
		return nil, fmt.Errorf("counting pairs: %w", err)
	}
	out := make(map[string]int, len(raw)/2)
	for i := 0; i+1 < len(raw); i += 2 {
		n, _ := raw[i].(string)
		c, _ := raw[i+1].(int64)
		out[n] = int(c)
	}
	return out, nil
}

func (s *Pairs) ttl() time.Duration {
	if s.retention > 0 {
		return s.retention
	}
	return 30 * 24 * time.Hour
}
