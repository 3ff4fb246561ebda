package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/optinkit/optin/internal/numberpool"
)

// Pairs is the numberpool.Store shared by every replica: a key per leased pair holding its chat
// (pair:<address>|<number>), a set of each chat's pairs (chatpairs:<chat>), per number a sorted set of
// its leased pairs by expiry (numberpairs:<number>; the counts are derived from it, so a lease that
// lapses stops counting), the set of numbers ever leased, the last number of each address
// (lastnumber:<address>), blocked pairs (pairblock:<address>|<number>), and the index of the chat that
// last took each pair, read bare (pairchat:<number>|<address>, kept beyond the release for the
// retention).
//
// Every name starts with poolPrefix, one hash tag: a take is all or nothing across the pairs of
// several numbers and addresses, so whatever it checks and writes must be in one slot. The pool is
// small (a key per live lease) and written once per chat's start and end, so one slot carries it.
// Every script is given each key it touches in KEYS; where those depend on a set's members (a chat's
// pairs, the numbers), the members are read first and the script checks that the set is still the
// same, else it is run again on the new members.
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

// poolPrefix is the pool's hash tag.
const poolPrefix = "optin:{pool}:"

// numbersKey is the set of the numbers ever leased.
const numbersKey = poolPrefix + "numbers"

func pairKey(pair string) string          { return poolPrefix + "pair:" + pair }
func blockKey(pair string) string         { return poolPrefix + "pairblock:" + pair }
func chatPairsKey(chatID string) string   { return poolPrefix + "chatpairs:" + chatID }
func numberPairsKey(number string) string { return poolPrefix + "numberpairs:" + number }
func lastKey(address string) string       { return poolPrefix + "lastnumber:" + address }

// pairChatKey is the index entry of the pair (number, address), read bare.
func pairChatKey(number, address string) string {
	return poolPrefix + "pairchat:" + numberpool.Bare(number) + "|" + numberpool.Bare(address)
}

// splitPair reads address|number.
func splitPair(pair string) (address, number string) {
	address, number, _ = strings.Cut(pair, "|")
	return address, number
}

// serverNow is the scripts' clock: Redis's own (TIME), in ms, the clock its key expiries run on, so
// that a lease stops counting (its score passed) exactly when its key expires, whatever the callers'
// clocks say.
const serverNow = `
local function servernow()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
`

// sameMembers begins the scripts that are given a set's members (KEYS[1], ARGV[from..]): they answer
// -1, to be run again, when the set has changed since it was read.
const sameMembers = `
local function changed(set, from)
  if redis.call('SCARD', set) ~= #ARGV - from + 1 then
    return true
  end
  for i = from, #ARGV do
    if redis.call('SISMEMBER', set, ARGV[i]) == 0 then
      return true
    end
  end
  return false
end
`

// takePairs: KEYS = the chat's pairs, the numbers, then for each pair its lease, its block, its
// number's leases, its address's last number and its index entry; ARGV = chat, ttl ms, then address,
// number for each pair. All or nothing.
var takePairs = redis.NewScript(serverNow + `
local chat, ttl, now = ARGV[1], tonumber(ARGV[2]), servernow()
local n = (#ARGV - 2) / 2
for i = 0, n - 1 do
  local k = 3 + 5 * i
  if redis.call('EXISTS', KEYS[k]) == 1 or redis.call('EXISTS', KEYS[k + 1]) == 1 then
    return 0
  end
end
for i = 0, n - 1 do
  local k, address, number = 3 + 5 * i, ARGV[3 + 2 * i], ARGV[4 + 2 * i]
  redis.call('SET', KEYS[k], chat, 'PX', ttl)
  redis.call('SADD', KEYS[1], address .. '|' .. number)
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('SADD', KEYS[2], number)
  redis.call('ZADD', KEYS[k + 2], now + ttl, address)
  redis.call('SET', KEYS[k + 3], number, 'PX', ttl)
  redis.call('SET', KEYS[k + 4], chat, 'PX', ttl)
end
return 1
`)

// releasePairs frees the pairs still leased to the chat and keeps the counts true. KEYS = the chat's
// pairs, then for each pair its lease and its number's leases; ARGV = chat, then the pairs.
var releasePairs = redis.NewScript(sameMembers + `
if changed(KEYS[1], 2) then
  return -1
end
for i = 2, #ARGV do
  local k = 2 * (i - 1)
  if redis.call('GET', KEYS[k]) == ARGV[1] then
    redis.call('DEL', KEYS[k])
    local bar = string.find(ARGV[i], '|', 1, true)
    redis.call('ZREM', KEYS[k + 1], string.sub(ARGV[i], 1, bar - 1))
  end
end
redis.call('DEL', KEYS[1])
return #ARGV - 1
`)

// releaseAddress frees the pairs of one address still leased to the chat. KEYS and ARGV as
// releasePairs', with the address after the chat.
var releaseAddress = redis.NewScript(sameMembers + `
if changed(KEYS[1], 3) then
  return -1
end
local chat, address, n = ARGV[1], ARGV[2], 0
for i = 3, #ARGV do
  local k = 2 * (i - 2)
  local bar = string.find(ARGV[i], '|', 1, true)
  if string.sub(ARGV[i], 1, bar - 1) == address then
    if redis.call('GET', KEYS[k]) == chat then
      redis.call('DEL', KEYS[k])
      redis.call('ZREM', KEYS[k + 1], address)
    end
    redis.call('SREM', KEYS[1], ARGV[i])
    n = n + 1
  end
end
return n
`)

// renewPairs starts the term of the chat's live leases again, and of their index entries. KEYS = the
// chat's pairs, then for each pair its lease, its number's leases and its index entry; ARGV = chat,
// ttl ms, then the pairs.
var renewPairs = redis.NewScript(serverNow + sameMembers + `
if changed(KEYS[1], 3) then
  return -1
end
local chat, ttl, now = ARGV[1], tonumber(ARGV[2]), servernow()
for i = 3, #ARGV do
  local k = 2 + 3 * (i - 3)
  if redis.call('GET', KEYS[k]) == chat then
    redis.call('PEXPIRE', KEYS[k], ttl)
    local bar = string.find(ARGV[i], '|', 1, true)
    redis.call('ZADD', KEYS[k + 1], now + ttl, string.sub(ARGV[i], 1, bar - 1))
    if redis.call('GET', KEYS[k + 2]) == chat then
      redis.call('PEXPIRE', KEYS[k + 2], ttl)
    end
  end
end
if #ARGV > 2 then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return #ARGV - 2
`)

// blockPair sets a pair aside for a while and drops its lease. KEYS = its block, its lease, its
// number's leases; ARGV = address, ttl ms.
var blockPair = redis.NewScript(`
redis.call('SET', KEYS[1], '1', 'PX', ARGV[2])
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
`)

// inUse drops the lapsed leases of every number and counts the live ones. KEYS = the numbers, then
// each number's leases; ARGV = the numbers. The answer is number, count, number, count…. A lease
// scored now is dropped only after now, as Redis expires its key only once its time has passed.
var inUse = redis.NewScript(serverNow + sameMembers + `
if changed(KEYS[1], 1) then
  return -1
end
local now = servernow()
local out = {}
for i = 1, #ARGV do
  redis.call('ZREMRANGEBYSCORE', KEYS[i + 1], '-inf', '(' .. now)
  local c = redis.call('ZCARD', KEYS[i + 1])
  if c > 0 then
    table.insert(out, ARGV[i])
    table.insert(out, c)
  end
end
return out
`)

// maxSetTries bounds how often a script given a set's members runs again because the set changed.
const maxSetTries = 20

// withMembers reads the set's members, then runs script with the keys and arguments made of them,
// again while the script answers -1 (the set changed in between).
func (s *Pairs) withMembers(ctx context.Context, set string, script *redis.Script, keys func([]string) []string, args ...any) (*redis.Cmd, error) {
	for range maxSetTries {
		members, err := s.rdb.SMembers(ctx, set).Result()
		if err != nil {
			return nil, err
		}
		cmd := script.Run(ctx, s.rdb, append([]string{set}, keys(members)...), append(args, anys(members)...)...)
		if n, err := cmd.Int(); err == nil && n == -1 {
			continue
		}
		return cmd, nil
	}
	return nil, errors.New("the set changed on every try")
}

// Take leases every pair to chatID unless one is leased or blocked.
func (s *Pairs) Take(ctx context.Context, chatID string, pairs []numberpool.Pair) (bool, error) {
	args := []any{chatID, s.ttl().Milliseconds()}
	keys := []string{chatPairsKey(chatID), numbersKey}
	for _, p := range pairs {
		pair := p.Address + "|" + p.Number
		args = append(args, p.Address, p.Number)
		keys = append(keys, pairKey(pair), blockKey(pair), numberPairsKey(p.Number), lastKey(p.Address), pairChatKey(p.Number, p.Address))
	}
	n, err := takePairs.Run(ctx, s.rdb, keys, args...).Int()
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
	cmd, err := s.withMembers(ctx, chatPairsKey(chatID), releasePairs, leaseKeys, chatID)
	if err == nil {
		err = cmd.Err()
	}
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("releasing pairs: %w", err)
	}
	// A release a failover lost would keep the pairs leased to a chat that recorded them free, until
	// the retention lapses.
	if err := s.sync(ctx); err != nil {
		return fmt.Errorf("releasing pairs: %w", err)
	}
	return nil
}

// ReleaseAddress frees the address's pairs leased to chatID.
func (s *Pairs) ReleaseAddress(ctx context.Context, chatID, address string) error {
	cmd, err := s.withMembers(ctx, chatPairsKey(chatID), releaseAddress, leaseKeys, chatID, address)
	if err == nil {
		err = cmd.Err()
	}
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("releasing an address's pairs: %w", err)
	}
	if err := s.sync(ctx); err != nil {
		return fmt.Errorf("releasing an address's pairs: %w", err)
	}
	return nil
}

// Renew starts the term of the chat's live leases again.
func (s *Pairs) Renew(ctx context.Context, chatID string) error {
	keys := func(pairs []string) []string {
		out := make([]string, 0, 3*len(pairs))
		for _, pair := range pairs {
			address, number := splitPair(pair)
			out = append(out, pairKey(pair), numberPairsKey(number), pairChatKey(number, address))
		}
		return out
	}
	cmd, err := s.withMembers(ctx, chatPairsKey(chatID), renewPairs, keys, chatID, s.ttl().Milliseconds())
	if err == nil {
		err = cmd.Err()
	}
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("renewing pairs: %w", err)
	}
	return nil
}

// Block keeps a pair out for ttl.
func (s *Pairs) Block(ctx context.Context, p numberpool.Pair, ttl time.Duration) error {
	pair := p.Address + "|" + p.Number
	if err := blockPair.Run(ctx, s.rdb, []string{blockKey(pair), pairKey(pair), numberPairsKey(p.Number)}, p.Address, ttl.Milliseconds()).Err(); err != nil {
		return fmt.Errorf("blocking a pair: %w", err)
	}
	// The block also frees the pair's lease: the chat records the party without it once this returns.
	if err := s.sync(ctx); err != nil {
		return fmt.Errorf("blocking a pair: %w", err)
	}
	return nil
}

// Last returns the address's last number.
func (s *Pairs) Last(ctx context.Context, address string) (string, error) {
	n, err := s.rdb.Get(ctx, lastKey(address)).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return n, err
}

// ChatOf returns the chat that last took the pair (number, address), read bare: one GET.
func (s *Pairs) ChatOf(ctx context.Context, number, address string) (string, error) {
	id, err := s.rdb.Get(ctx, pairChatKey(number, address)).Result()
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
	keys := func(numbers []string) []string {
		out := make([]string, len(numbers))
		for i, n := range numbers {
			out[i] = numberPairsKey(n)
		}
		return out
	}
	cmd, err := s.withMembers(ctx, numbersKey, inUse, keys)
	var raw []any
	if err == nil {
		raw, err = cmd.Slice()
	}
	if err != nil && !errors.Is(err, redis.Nil) {
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

// leaseKeys are the keys releasePairs and releaseAddress are given for a chat's pairs: each one's lease
// and its number's leases.
func leaseKeys(pairs []string) []string {
	out := make([]string, 0, 2*len(pairs))
	for _, pair := range pairs {
		_, number := splitPair(pair)
		out = append(out, pairKey(pair), numberPairsKey(number))
	}
	return out
}

func (s *Pairs) ttl() time.Duration {
	if s.retention > 0 {
		return s.retention
	}
	return 30 * 24 * time.Hour
}
