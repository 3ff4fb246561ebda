package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/optinkit/optin/internal/chat"
)

// Chats is the chat.Store shared by every replica: one JSON value per chat, an index from conversation
// SID to chat id, and a sorted set by creation for listing, trimmed of the chats the retention forgot
// through a second one by when each finished chat's key expires.
type Chats struct {
	rdb       *redis.Client
	retention time.Duration
	// now is the clock that scores when a finished chat's key expires (tests move it).
	now func() time.Time
	// filled: the open and pending sets are known to cover every chat (see backfill).
	filled *atomic.Bool
	// sync waits for the replicas the store is configured to wait for (Store.Sync): every write that
	// guards a side effect — a chat created or changed, a lease taken — is acknowledged by them before
	// the caller acts on it, so a failover cannot lose the write and have the effect made twice.
	sync func(context.Context) error
}

var _ chat.Store = (*Chats)(nil)

// Chats returns the chat store on the same Redis; finished chats are kept for retention.
func (s *Store) Chats() *Chats {
	return &Chats{rdb: s.rdb, retention: s.retention, now: time.Now, filled: new(atomic.Bool), sync: s.Sync}
}

const (
	chatPrefix = "optin:chat:"
	convPrefix = "optin:chatconv:"
	lockPrefix = "optin:chatlock:"
	chatIndex  = "optin:chats"
	// chatEnds scores each finished chat by when its key expires (Unix ms): Create trims chatIndex of
	// those whose key is gone, so the index does not keep a member for every chat ever made.
	chatEnds = "optin:chats:ends"
	// trimBatch bounds the members a Create looks at: more than chats end per create, so it keeps up.
	trimBatch = 16
	// openSet holds the ids of the chats not in a final state; pendingSet those with undelivered events.
	openSet    = "optin:chats:open"
	pendingSet = "optin:chats:pending"
	chatSeq    = "optin:chatseq"
	maxTxTries = 20
)

// createChat stores the chat unless its id is taken (answering the stored one), and lists it.
var createChat = redis.NewScript(`
local existing = redis.call('GET', KEYS[1])
if existing then
  return existing
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
redis.call('SADD', KEYS[3], ARGV[3])
redis.call('ZREM', KEYS[4], ARGV[3])
return false
`)

// trimIndex takes the index (KEYS[1]) and the ends (KEYS[2]) through the chats whose key should have
// expired (ARGV[2..], their keys KEYS[3..]): a chat whose key is gone leaves both; one whose key is
// still there (its retention started again, or the id was used anew) is scored by its key's expiry
// again, or leaves the ends when its key no longer expires. ARGV[1] is now (Unix ms). Atomic: a chat
// created anew between the caller's read and this script keeps its index member.
var trimIndex = redis.NewScript(`
local trimmed = 0
for i = 2, #ARGV do
  local key, id = KEYS[i + 1], ARGV[i]
  if redis.call('EXISTS', key) == 0 then
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZREM', KEYS[2], id)
    trimmed = trimmed + 1
  else
    local ttl = redis.call('PTTL', key)
    if ttl >= 0 then
      redis.call('ZADD', KEYS[2], tonumber(ARGV[1]) + ttl, id)
    else
      redis.call('ZREM', KEYS[2], id)
    end
  end
end
return trimmed
`)

// lock takes a lease unless another owner holds it; its owner taking it again extends it.
var lock = redis.NewScript(`
local held = redis.call('GET', KEYS[1])
if held and held ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`)

// unlock deletes the lease only if owner holds it.
var unlock = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// Create records c unless its id is taken.
func (s *Chats) Create(ctx context.Context, c chat.Chat) (chat.Chat, bool, error) {
	seq, err := s.rdb.Incr(ctx, chatSeq).Result()
	if err != nil {
		return chat.Chat{}, false, fmt.Errorf("numbering chat: %w", err)
	}
	c.Seq = seq
	raw, err := json.Marshal(c)
	if err != nil {
		return chat.Chat{}, false, err
	}
	existing, err := createChat.Run(ctx, s.rdb, []string{chatPrefix + c.ID, chatIndex, openSet, chatEnds}, raw, seq, c.ID).Text()
	switch {
	case errors.Is(err, redis.Nil):
		if err := s.sync(ctx); err != nil {
			return chat.Chat{}, false, fmt.Errorf("creating chat: %w", err)
		}
		if err := s.trim(ctx); err != nil {
			return chat.Chat{}, false, fmt.Errorf("creating chat: %w", err)
		}
		return c, true, nil
	case err != nil:
		return chat.Chat{}, false, fmt.Errorf("creating chat: %w", err)
	}
	got, err := decodeChat(existing)
	return got, false, err
}

// trim drops from the index up to trimBatch chats the retention forgot: each create trims more than
// one chat's end, so the index holds the chats that exist and the few ended since the last create.
func (s *Chats) trim(ctx context.Context) error {
	now := s.now().UnixMilli()
	ids, err := s.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{Key: chatEnds, Start: "-inf", Stop: strconv.FormatInt(now, 10),
		ByScore: true, Count: trimBatch}).Result()
	if err != nil || len(ids) == 0 {
		return err
	}
	keys := []string{chatIndex, chatEnds}
	args := []any{now}
	for _, id := range ids {
		keys, args = append(keys, chatPrefix+id), append(args, id)
	}
	return trimIndex.Run(ctx, s.rdb, keys, args...).Err()
}

// Get returns the chat with this id.
func (s *Chats) Get(ctx context.Context, id string) (chat.Chat, error) {
	raw, err := s.rdb.Get(ctx, chatPrefix+id).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return chat.Chat{}, fmt.Errorf("chat %s: %w", id, chat.ErrNotFound)
	case err != nil:
		return chat.Chat{}, fmt.Errorf("reading chat: %w", err)
	}
	return decodeChat(raw)
}

// ByConversation returns the chat of a conversation.
func (s *Chats) ByConversation(ctx context.Context, conversationSid string) (chat.Chat, error) {
	id, err := s.rdb.Get(ctx, convPrefix+conversationSid).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return chat.Chat{}, fmt.Errorf("chat of %s: %w", conversationSid, chat.ErrNotFound)
	case err != nil:
		return chat.Chat{}, fmt.Errorf("reading chat index: %w", err)
	}
	return s.Get(ctx, id)
}

// Update applies change under an optimistic transaction: when another replica changed the chat in
// between, change runs again on what it wrote.
func (s *Chats) Update(ctx context.Context, id string, change func(*chat.Chat) error) (chat.Chat, error) {
	key := chatPrefix + id
	var out chat.Chat
	tx := func(tx *redis.Tx) error {
		raw, err := tx.Get(ctx, key).Result()
		if errors.Is(err, redis.Nil) {
			return fmt.Errorf("chat %s: %w", id, chat.ErrNotFound)
		}
		if err != nil {
			return err
		}
		c, err := decodeChat(raw)
		if err != nil {
			return err
		}
		if err := change(&c); err != nil {
			return err
		}
		c.ID = id
		b, err := encodeChat(c)
		if err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, key, b, redis.KeepTTL)
			if c.ConversationSid != "" {
				p.Set(ctx, convPrefix+c.ConversationSid, id, redis.KeepTTL)
			}
			if c.State.Final() {
				p.SRem(ctx, openSet, id)
			} else {
				p.SAdd(ctx, openSet, id)
			}
			if c.HasWork() {
				p.SAdd(ctx, pendingSet, id)
			} else {
				p.SRem(ctx, pendingSet, id)
			}
			if c.State.Final() && s.retention > 0 {
				p.PExpire(ctx, key, s.retention)
				if c.ConversationSid != "" {
					p.PExpire(ctx, convPrefix+c.ConversationSid, s.retention)
				}
				p.ZAdd(ctx, chatEnds, redis.Z{Score: float64(s.now().Add(s.retention).UnixMilli()), Member: id})
			}
			return nil
		})
		out = c
		return err
	}
	for try := range maxTxTries {
		err := s.rdb.Watch(ctx, tx, key)
		if errors.Is(err, redis.TxFailedErr) {
			// Another writer won: wait a random while that doubles with each try (0.1 ms up to 6 ms),
			// so that a burst of writers to one chat (fifty failure reports at once) spreads out
			// instead of all retrying together until the tries run out.
			wait := time.Duration(rand.Int64N(int64(100*time.Microsecond) << min(try, 6)))
			select {
			case <-ctx.Done():
				return chat.Chat{}, ctx.Err()
			case <-time.After(wait):
			}
			continue
		}
		if err != nil {
			return chat.Chat{}, err
		}
		if err := s.sync(ctx); err != nil {
			return chat.Chat{}, fmt.Errorf("updating chat %s: %w", id, err)
		}
		return out, nil
	}
	return chat.Chat{}, fmt.Errorf("updating chat %s: too much contention", id)
}

// Delete forgets a chat.
func (s *Chats) Delete(ctx context.Context, id string) error {
	c, err := s.Get(ctx, id)
	if errors.Is(err, chat.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, chatPrefix+id)
		p.ZRem(ctx, chatIndex, id)
		p.ZRem(ctx, chatEnds, id)
		p.SRem(ctx, openSet, id)
		p.SRem(ctx, pendingSet, id)
		if c.ConversationSid != "" {
			p.Del(ctx, convPrefix+c.ConversationSid)
		}
		return nil
	})
	return err
}

// List returns chats newest first, reading the index in batches and skipping chats that expired.
func (s *Chats) List(ctx context.Context, state chat.State, limit int, before int64) ([]chat.Chat, int64, error) {
	upper := "+inf"
	if before > 0 {
		upper = "(" + strconv.FormatInt(before, 10)
	}
	var out []chat.Chat
	batch := int64(max(limit*2, 50))
	for {
		ids, err := s.rdb.ZRevRangeByScoreWithScores(ctx, chatIndex, &redis.ZRangeBy{Max: upper, Min: "-inf", Count: batch}).Result()
		if err != nil {
			return nil, 0, fmt.Errorf("listing chats: %w", err)
		}
		if len(ids) == 0 {
			return out, 0, nil
		}
		keys := make([]string, len(ids))
		for i, z := range ids {
			keys[i] = chatPrefix + z.Member.(string)
		}
		vals, err := s.rdb.MGet(ctx, keys...).Result()
		if err != nil {
			return nil, 0, fmt.Errorf("reading chats: %w", err)
		}
		for i, v := range vals {
			raw, ok := v.(string)
			if !ok {
				s.rdb.ZRem(ctx, chatIndex, ids[i].Member) // expired: drop it from the index
				continue
			}
			c, err := decodeChat(raw)
			if err != nil {
				return nil, 0, err
			}
			if state != "" && c.State != state {
				continue
			}
			if len(out) == limit {
				return out, out[len(out)-1].Seq, nil
			}
			out = append(out, c)
		}
		upper = "(" + strconv.FormatInt(int64(ids[len(ids)-1].Score), 10)
	}
}

// Lock takes the lease unless another owner holds it; its owner taking it again extends it.
func (s *Chats) Lock(ctx context.Context, id, owner string, ttl time.Duration) (bool, error) {
	n, err := lock.Run(ctx, s.rdb, []string{lockPrefix + id}, owner, ttl.Milliseconds()).Int()
	if err != nil || n != 1 {
		return false, err
	}
	if err := s.sync(ctx); err != nil {
		// Not acknowledged: give it back rather than hold it, unannounced, until it lapses.
		_ = unlock.Run(context.WithoutCancel(ctx), s.rdb, []string{lockPrefix + id}, owner).Err()
		return false, fmt.Errorf("taking lease %s: %w", id, err)
	}
	return true, nil
}

// Open returns the ids of the chats not in a final state.
func (s *Chats) Open(ctx context.Context) ([]string, error) {
	if err := s.backfill(ctx); err != nil {
		return nil, err
	}
	return s.members(ctx, openSet)
}

// WithPending returns the ids of the chats that have work: undelivered events, held messages.
func (s *Chats) WithPending(ctx context.Context) ([]string, error) {
	if err := s.backfill(ctx); err != nil {
		return nil, err
	}
	return s.members(ctx, pendingSet)
}

// setsMarker records that the open and pending sets cover every chat.
const setsMarker = "optin:chats:sets"

// backfill adds the chats written before the open and pending sets existed (by an earlier version) to
// them, once: the first reader after an upgrade walks the index; adding twice is harmless.
func (s *Chats) backfill(ctx context.Context) error {
	if s.filled.Load() {
		return nil // this replica has seen the marker: no read per sweep
	}
	if n, err := s.rdb.Exists(ctx, setsMarker).Result(); err != nil || n == 1 {
		s.filled.Store(n == 1)
		return err
	}
	const batch = 500
	for start := int64(0); ; start += batch {
		ids, err := s.rdb.ZRange(ctx, chatIndex, start, start+batch-1).Result()
		if err != nil {
			return fmt.Errorf("listing chats: %w", err)
		}
		if len(ids) == 0 {
			break
		}
		keys := make([]string, len(ids))
		for i, id := range ids {
			keys[i] = chatPrefix + id
		}
		vals, err := s.rdb.MGet(ctx, keys...).Result()
		if err != nil {
			return fmt.Errorf("reading chats: %w", err)
		}
		var open, pending []any
		for i, v := range vals {
			raw, ok := v.(string)
			if !ok {
				continue
			}
			c, err := decodeChat(raw)
			if err != nil {
				return err
			}
			if !c.State.Final() {
				open = append(open, ids[i])
			}
			if c.HasWork() {
				pending = append(pending, ids[i])
			}
		}
		if len(open) > 0 {
			if err := s.rdb.SAdd(ctx, openSet, open...).Err(); err != nil {
				return err
			}
		}
		if len(pending) > 0 {
			if err := s.rdb.SAdd(ctx, pendingSet, pending...).Err(); err != nil {
				return err
			}
		}
	}
	if err := s.rdb.Set(ctx, setsMarker, "1", 0).Err(); err != nil {
		return err
	}
	s.filled.Store(true)
	return nil
}

// members lists a set of chat ids, dropping those whose chat expired.
func (s *Chats) members(ctx context.Context, set string) ([]string, error) {
	ids, err := s.rdb.SMembers(ctx, set).Result()
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = chatPrefix + id
	}
	n, err := s.rdb.Exists(ctx, keys...).Result()
	if err != nil || int(n) == len(ids) {
		return ids, err
	}
	out := ids[:0]
	for _, id := range ids {
		if e, err := s.rdb.Exists(ctx, chatPrefix+id).Result(); err == nil && e == 0 {
			s.rdb.SRem(ctx, set, id)
			continue
		}
		out = append(out, id)
	}
	return out, nil
}

// Unlock gives the lease back if owner holds it.
func (s *Chats) Unlock(ctx context.Context, id, owner string) error {
	return unlock.Run(ctx, s.rdb, []string{lockPrefix + id}, owner).Err()
}

// encodeChat writes a chat whole while it is open, and in its compact finished form once it is final
// with its events delivered (about a third of the room).
func encodeChat(c chat.Chat) ([]byte, error) {
	if c.Compactable() {
		return chat.MarshalFinished(c)
	}
	return json.Marshal(c)
}

func decodeChat(raw string) (chat.Chat, error) {
	if strings.HasPrefix(raw, chat.FinishedPrefix) {
		return chat.UnmarshalFinished([]byte(raw))
	}
	var c chat.Chat
	if err := json.Unmarshal([]byte(raw), &c); err != nil {
		return chat.Chat{}, fmt.Errorf("decoding chat: %w", err)
	}
	if c.Steps == nil {
		c.Steps = map[string]string{}
	}
	return c, nil
}
