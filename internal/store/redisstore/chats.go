package redisstore

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/optinkit/optin/internal/chat"
)

// Chats is the chat.Store shared by every replica: one JSON document per chat and, beside it, the parts
// of it that grow (held messages, failed deliveries, the handled set: see chatparts.go), an index from
// conversation SID to chat id, and per bucket of chats a sorted set by creation for listing, trimmed of the chats the
// retention forgot through a second one by when each finished chat's key expires, and the sets of open
// chats and of chats with work.
//
// Redis Cluster: a chat's document, its parts and its bucket's sets share the hash tag {chats:<bucket>} (see
// chatBucket), so that creating a chat, changing it and trimming the index are each one script or one
// WATCH transaction on one slot, while the chats spread over chatBuckets slots. The conversation index
// (one key per conversation, looked up without the chat's id) and the chat's lease are keys of their
// own, each written by a single-key command or script.
type Chats struct {
	rdb       redis.UniversalClient
	retention time.Duration
	// now is the clock that scores when a finished chat's key expires (tests move it).
	now func() time.Time
	// migrated: the chats under the names before hash tags are known to be moved (see Store.Migrate);
	// until then a chat not found under its new name is looked for under its old one.
	migrated *atomic.Bool
	// sync waits for the replicas the store is configured to wait for (Store.Sync): every write that
	// guards a side effect — a chat created or changed, a lease taken — is acknowledged by them before
	// the caller acts on it, so a failover cannot lose the write and have the effect made twice.
	sync func(context.Context) error
}

var _ chat.Store = (*Chats)(nil)

// Chats returns the chat store on the same Redis; finished chats are kept for retention.
func (s *Store) Chats() *Chats {
	return &Chats{rdb: s.rdb, retention: s.retention, now: time.Now, migrated: s.migrated, sync: s.Sync}
}

const (
	// chatBuckets is how many hash tags the chats are spread over. Fixed: a chat's keys are named by
	// its bucket, so changing it moves every chat (a migration).
	chatBuckets = 16
	convPrefix  = "optin:chatconv:"
	lockPrefix  = "optin:chatlock:"
	// trimBatch bounds the members a Create looks at in its bucket: more than chats end per create, so
	// it keeps up.
	trimBatch  = 16
	chatSeq    = "optin:chatseq"
	maxTxTries = 20
)

// Names of a bucket's keys (bucketKey).
const (
	// setIndex scores each chat by its Seq, for List.
	setIndex = "index"
	// setEnds scores each finished chat by when its key expires (Unix ms): Create trims the index of those
	// whose key is gone, so that it does not keep a member for every chat ever made.
	setEnds = "ends"
	// setOpen holds the ids of the chats not in a final state; setPending those with work
	// (Chat.HasWork).
	setOpen    = "open"
	setPending = "pending"
)

// chatBucket is the bucket of a chat id: FNV-1a, so that every replica and version agrees.
func chatBucket(id string) int {
	h := fnv.New32a()
	h.Write([]byte(id))
	return int(h.Sum32() % chatBuckets)
}

func bucketTag(b int) string { return "optin:{chats:" + strconv.Itoa(b) + "}:" }

// chatKey is where a chat's value lives.
func chatKey(id string) string { return bucketTag(chatBucket(id)) + "chat:" + id }

// ChatKey is the Redis key of a chat's document, without its parts (ChatKeys has them all): for
// measuring it (MEMORY USAGE) from outside.
func ChatKey(id string) string { return chatKey(id) }

// bucketKey names one of a bucket's sets (index, ends, open, pending).
func bucketKey(b int, name string) string { return bucketTag(b) + name }

// createChat stores the chat unless its id is taken (answering the stored one), and lists it. KEYS:
// the chat, its bucket's index, open set and ends, then its parts (partKeys), deleted: left over from
// a chat of this id that expired, they would not be its.
var createChat = redis.NewScript(`
local existing = redis.call('GET', KEYS[1])
if existing then
  return existing
end
redis.call('DEL', KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9])
redis.call('SET', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
redis.call('SADD', KEYS[3], ARGV[3])
redis.call('ZREM', KEYS[4], ARGV[3])
return false
`)

// trimIndex takes the index (KEYS[1]) and the ends (KEYS[2]) of a bucket through the chats whose key
// should have expired (ARGV[2..], their keys KEYS[3..], all of the bucket): a chat whose key is gone
// leaves both; one whose key is still there (its retention started again, or the id was used anew) is
// scored by its key's expiry again, or leaves the ends when its key no longer expires. ARGV[1] is now
// (Unix ms). Atomic: a chat created anew between the caller's read and this script keeps its member.
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
	// A chat of this id stored under its old name takes the id: move it first.
	if _, err := s.moveOld(ctx, c.ID); err != nil {
		return chat.Chat{}, false, fmt.Errorf("creating chat: %w", err)
	}
	seq, err := s.rdb.Incr(ctx, chatSeq).Result()
	if err != nil {
		return chat.Chat{}, false, fmt.Errorf("numbering chat: %w", err)
	}
	c.Seq = seq
	raw, err := createDoc(c)
	if err != nil {
		return chat.Chat{}, false, err
	}
	if c.ConversationSid != "" {
		// Another slot's key, first: see Update.
		if err := s.rdb.Set(ctx, convPrefix+c.ConversationSid, c.ID, redis.KeepTTL).Err(); err != nil {
			return chat.Chat{}, false, fmt.Errorf("creating chat: %w", err)
		}
	}
	b := chatBucket(c.ID)
	parts := partKeys(c.ID)
	keys := append([]string{chatKey(c.ID), bucketKey(b, setIndex), bucketKey(b, setOpen), bucketKey(b, setEnds)}, parts[:]...)
	existing, err := createChat.Run(ctx, s.rdb, keys, raw, seq, c.ID).Text()
	switch {
	case errors.Is(err, redis.Nil):
		if err := s.sync(ctx); err != nil {
			return chat.Chat{}, false, fmt.Errorf("creating chat: %w", err)
		}
		if err := s.trim(ctx, b); err != nil {
			return chat.Chat{}, false, fmt.Errorf("creating chat: %w", err)
		}
		return c, true, nil
	case err != nil:
		return chat.Chat{}, false, fmt.Errorf("creating chat: %w", err)
	}
	if strings.HasPrefix(existing, splitPrefix) {
		got, err := s.Get(ctx, c.ID) // with its parts
		return got, false, err
	}
	got, err := decodeChat(existing)
	return got, false, err
}

// trim drops from bucket b's index up to trimBatch chats the retention forgot: the creates of a bucket
// trim more than its chats end, so its index holds the chats that exist and the few ended since.
func (s *Chats) trim(ctx context.Context, b int) error {
	now := s.now().UnixMilli()
	ids, err := s.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{Key: bucketKey(b, setEnds), Start: "-inf", Stop: strconv.FormatInt(now, 10),
		ByScore: true, Count: trimBatch}).Result()
	if err != nil || len(ids) == 0 {
		return err
	}
	keys := []string{bucketKey(b, setIndex), bucketKey(b, setEnds)}
	args := []any{now}
	for _, id := range ids {
		keys, args = append(keys, chatKey(id)), append(args, id)
	}
	return trimIndex.Run(ctx, s.rdb, keys, args...).Err()
}

// Get returns the chat with this id: its document and parts in one script, one round trip.
func (s *Chats) Get(ctx context.Context, id string) (chat.Chat, error) {
	st, err := read(ctx, s.rdb, id)
	if errors.Is(err, chat.ErrNotFound) {
		if moved, merr := s.moveOld(ctx, id); merr != nil {
			return chat.Chat{}, fmt.Errorf("reading chat: %w", merr)
		} else if moved {
			st, err = read(ctx, s.rdb, id)
		}
	}
	if err != nil {
		return chat.Chat{}, err
	}
	return st.chat()
}

// read returns the chat as stored.
func read(ctx context.Context, rdb redis.Scripter, id string) (stored, error) {
	v, err := readChat.Run(ctx, rdb, chatKeys(id), splitPrefix).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return stored{}, fmt.Errorf("chat %s: %w", id, chat.ErrNotFound)
	case err != nil:
		return stored{}, fmt.Errorf("reading chat: %w", err)
	}
	return parseStored(v)
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
//
// The transaction watches the chat's document and parts, and holds them and its bucket's sets (one
// slot); it writes only what changed (writeParts): holding a message sends that message and the
// document, not the messages held before. The conversation index is another
// slot's key, written outside it: before the transaction when the chat gains a conversation, so that
// the conversation's first webhook finds the chat (should the transaction lose, the entry still names
// the chat whose conversation it is); its expiry after, once the chat is final (a crash in between
// leaves that one small key without expiry).
func (s *Chats) Update(ctx context.Context, id string, change func(*chat.Chat) error) (chat.Chat, error) {
	key, parts, b := chatKey(id), partKeys(id), chatBucket(id)
	var out chat.Chat
	tx := func(tx *redis.Tx) error {
		st, err := read(ctx, tx, id)
		if err != nil {
			return err
		}
		c, err := st.chat()
		if err != nil {
			return err
		}
		before := c.ConversationSid
		if err := change(&c); err != nil {
			return err
		}
		c.ID = id
		next, err := splitChat(c)
		if err != nil {
			return err
		}
		if c.ConversationSid != "" && c.ConversationSid != before {
			if err := s.rdb.Set(ctx, convPrefix+c.ConversationSid, id, redis.KeepTTL).Err(); err != nil {
				return err
			}
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			if string(next.doc) != st.doc {
				p.Set(ctx, key, next.doc, redis.KeepTTL)
			}
			if err := writeParts(ctx, p, st, next, parts); err != nil {
				return err
			}
			if c.State.Final() {
				p.SRem(ctx, bucketKey(b, setOpen), id)
			} else {
				p.SAdd(ctx, bucketKey(b, setOpen), id)
			}
			if c.HasWork() {
				p.SAdd(ctx, bucketKey(b, setPending), id)
			} else {
				p.SRem(ctx, bucketKey(b, setPending), id)
			}
			if c.State.Final() && s.retention > 0 {
				// The parts go with the chat (a compact one has none: writeParts deleted them).
				p.PExpire(ctx, key, s.retention)
				for i, n := range next.sizes() {
					if n > 0 {
						p.PExpire(ctx, parts[i], s.retention)
					}
				}
				p.ZAdd(ctx, bucketKey(b, setEnds), redis.Z{Score: float64(s.now().Add(s.retention).UnixMilli()), Member: id})
			}
			return nil
		})
		out = c
		return err
	}
	moved := false
	for try := range maxTxTries {
		err := s.rdb.Watch(ctx, tx, chatKeys(id)...)
		if errors.Is(err, chat.ErrNotFound) && !moved {
			// Perhaps stored under its old name: move it and try again, once.
			moved = true
			if ok, err := s.moveOld(ctx, id); err != nil {
				return chat.Chat{}, fmt.Errorf("updating chat %s: %w", id, err)
			} else if ok {
				continue
			}
		}
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
		if out.State.Final() && s.retention > 0 && out.ConversationSid != "" {
			if err := s.rdb.PExpire(ctx, convPrefix+out.ConversationSid, s.retention).Err(); err != nil {
				return chat.Chat{}, fmt.Errorf("updating chat %s: %w", id, err)
			}
		}
		if err := s.sync(ctx); err != nil {
			return chat.Chat{}, fmt.Errorf("updating chat %s: %w", id, err)
		}
		return out, nil
	}
	return chat.Chat{}, fmt.Errorf("updating chat %s: too much contention", id)
}

// Delete forgets a chat: its document, parts and members of its bucket's sets in one transaction, then its conversation's entry
// (left behind by a crash, it names a chat that is not found).
func (s *Chats) Delete(ctx context.Context, id string) error {
	c, err := s.Get(ctx, id)
	if errors.Is(err, chat.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	b := chatBucket(id)
	if _, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, chatKeys(id)...)
		for _, set := range []string{setIndex, setEnds} {
			p.ZRem(ctx, bucketKey(b, set), id)
		}
		for _, set := range []string{setOpen, setPending} {
			p.SRem(ctx, bucketKey(b, set), id)
		}
		return nil
	}); err != nil {
		return err
	}
	if c.ConversationSid != "" {
		if err := s.rdb.Del(ctx, convPrefix+c.ConversationSid).Err(); err != nil {
			return err
		}
	}
	// A forget a failover lost would bring the chat back, starting: the reconciler would resume a start
	// its caller was told had failed.
	if err := s.sync(ctx); err != nil {
		return fmt.Errorf("forgetting chat %s: %w", id, err)
	}
	return nil
}

// listed is a member of a bucket's index.
type listed struct {
	id     string
	seq    float64
	bucket int
}

// List returns chats newest first, merging the buckets' indexes in rounds and skipping chats that
// expired. A round reads up to perBucket members below upper from each bucket; of a bucket that gave
// that many, the ones further down are not known yet, so the round takes only the members at or above
// the highest of those buckets' last scores (Seqs are unique) and the next round starts below it.
func (s *Chats) List(ctx context.Context, state chat.State, limit int, before int64) ([]chat.Chat, int64, error) {
	upper := "+inf"
	if before > 0 {
		upper = "(" + strconv.FormatInt(before, 10)
	}
	perBucket := int64(max(limit/2, 10))
	var out []chat.Chat
	for {
		pipe := s.rdb.Pipeline()
		cmds := make([]*redis.ZSliceCmd, chatBuckets)
		for b := range chatBuckets {
			cmds[b] = pipe.ZRevRangeByScoreWithScores(ctx, bucketKey(b, setIndex), &redis.ZRangeBy{Max: upper, Min: "-inf", Count: perBucket})
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, 0, fmt.Errorf("listing chats: %w", err)
		}
		var round []listed
		cut, full := 0.0, false
		for b, cmd := range cmds {
			zs := cmd.Val()
			for _, z := range zs {
				round = append(round, listed{id: z.Member.(string), seq: z.Score, bucket: b})
			}
			if int64(len(zs)) == perBucket && (!full || zs[len(zs)-1].Score > cut) {
				cut, full = zs[len(zs)-1].Score, true
			}
		}
		slices.SortFunc(round, func(a, b listed) int { return cmp.Compare(b.seq, a.seq) })
		if full {
			round = slices.DeleteFunc(round, func(l listed) bool { return l.seq < cut })
		}
		if len(round) == 0 {
			return out, 0, nil
		}
		reads, err := s.readMany(ctx, round)
		if err != nil {
			return nil, 0, err
		}
		for i, st := range reads {
			if st == nil {
				s.rdb.ZRem(ctx, bucketKey(round[i].bucket, setIndex), round[i].id) // expired: drop it from the index
				continue
			}
			c, err := st.chat()
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
		if !full {
			return out, 0, nil
		}
		upper = "(" + strconv.FormatInt(int64(cut), 10)
	}
}

// readMany reads the listed chats in one pipeline (nil for one that is gone), loading readChat first
// if a Redis does not know it.
func (s *Chats) readMany(ctx context.Context, chats []listed) ([]*stored, error) {
	for try := 0; ; try++ {
		pipe := s.rdb.Pipeline()
		cmds := make([]*redis.Cmd, len(chats))
		for i, l := range chats {
			cmds[i] = readChat.EvalSha(ctx, pipe, chatKeys(l.id), splitPrefix)
		}
		_, _ = pipe.Exec(ctx) // each command's error is looked at below
		out, unknown := make([]*stored, len(chats)), false
		for i, cmd := range cmds {
			v, err := cmd.Result()
			if errors.Is(err, redis.Nil) {
				continue
			}
			if unknown = redis.HasErrorPrefix(err, "NOSCRIPT") && try == 0; unknown {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("reading chats: %w", err)
			}
			st, err := parseStored(v)
			if err != nil {
				return nil, err
			}
			out[i] = &st
		}
		if !unknown {
			return out, nil
		}
		if err := readChat.Load(ctx, s.rdb).Err(); err != nil {
			return nil, fmt.Errorf("reading chats: %w", err)
		}
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
func (s *Chats) Open(ctx context.Context, shard, shards int) ([]string, error) {
	return s.members(ctx, setOpen, shard, shards)
}

// WithPending returns the ids of the chats that have work: undelivered events, held messages.
func (s *Chats) WithPending(ctx context.Context) ([]string, error) {
	return s.members(ctx, setPending, 0, 1)
}

// members lists the ids in the buckets' sets (open or pending) of one shard of shards (chat.ShardOf),
// dropping those whose chat expired. When shards divides the buckets, a shard's ids are in its buckets
// alone (both hash the id with FNV-1a): only those are read.
func (s *Chats) members(ctx context.Context, set string, shard, shards int) ([]string, error) {
	shards = max(shards, 1)
	shard %= shards
	pipe := s.rdb.Pipeline()
	var cmds []*redis.StringSliceCmd
	for b := range chatBuckets {
		if chatBuckets%shards == 0 && b%shards != shard {
			continue
		}
		cmds = append(cmds, pipe.SMembers(ctx, bucketKey(b, set)))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("listing chats: %w", err)
	}
	var ids []string
	for _, cmd := range cmds {
		for _, id := range cmd.Val() {
			if chat.ShardOf(id, shards) == shard {
				ids = append(ids, id)
			}
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	pipe = s.rdb.Pipeline()
	exists := make([]*redis.IntCmd, len(ids))
	for i, id := range ids {
		exists[i] = pipe.Exists(ctx, chatKey(id))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("listing chats: %w", err)
	}
	out := ids[:0]
	for i, id := range ids {
		if exists[i].Val() == 0 {
			s.rdb.SRem(ctx, bucketKey(chatBucket(id), set), id)
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

// decodeChat reads a chat's document: its finished form, or the full one (its parts, when split out,
// read apart).
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
