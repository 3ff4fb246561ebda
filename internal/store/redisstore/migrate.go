package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// The names an earlier version stored chats and pairs under, without hash tags. Migrate, and a chat's
// read before Migrate has finished, move what is under them to today's names. The flows, conversation
// index, chat leases, windows, revocations and rate limits kept their names: each is one key per
// command or script.
const (
	oldChatPrefix = "optin:chat:"
	oldChatIndex  = "optin:chats"
	oldChatEnds   = "optin:chats:ends"
	oldOpenSet    = "optin:chats:open"
	oldPendingSet = "optin:chats:pending"
	oldSetsMarker = "optin:chats:sets"
	oldNumbers    = "optin:numbers"
)

// oldPoolPrefixes are the pool's earlier names; each moves to poolPrefix and the rest of its name.
var oldPoolPrefixes = []string{"optin:pair:", "optin:pairblock:", "optin:chatpairs:", "optin:numberpairs:", "optin:lastnumber:", "optin:pairchat:"}

const (
	// migratedKey records that Migrate has finished: replicas started later skip it at once.
	migratedKey = "optin:migrated:hashtags"
	// migrateLease is the lease one replica migrates under, taken again every migrateRenew keys.
	migrateLease = "optin:migrating"
	migrateTerm  = time.Minute
	migrateRenew = 200
)

// moveIn stores a chat read under its old name unless a chat of its id is stored already (written by
// this version since: it is the newer), with its old expiry, and lists it in its bucket. KEYS: the
// chat, its bucket's index, open set, pending set and ends; ARGV: value, expiry in ms (0: none), Seq,
// open (1/0), pending (1/0), when it expires (Unix ms), id.
var moveIn = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
local ttl = tonumber(ARGV[2])
if ttl > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
  redis.call('ZADD', KEYS[5], ARGV[6], ARGV[7])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[7])
if ARGV[4] == '1' then
  redis.call('SADD', KEYS[3], ARGV[7])
end
if ARGV[5] == '1' then
  redis.call('SADD', KEYS[4], ARGV[7])
end
return 1
`)

// moveOld moves the chat id from its old name, unless Migrate is known to have finished; it reports
// whether there was one.
func (s *Chats) moveOld(ctx context.Context, id string) (bool, error) {
	if s.migrated.Load() {
		return false, nil
	}
	return moveChat(ctx, s.rdb, id, s.now())
}

// moveChat moves one chat in two steps, each on one slot: the copy (kept out if the new name is taken),
// then the old key's deletion. A crash between them leaves both; the next move finds the copy there
// and deletes the old key. The old index and sets are rebuilt from the chat itself, and dropped whole
// by Migrate at its end.
func moveChat(ctx context.Context, rdb redis.UniversalClient, id string, now time.Time) (bool, error) {
	old := oldChatPrefix + id
	raw, err := rdb.Get(ctx, old).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("moving chat %s: %w", id, err)
	}
	ttl, err := rdb.PTTL(ctx, old).Result()
	if err != nil {
		return false, fmt.Errorf("moving chat %s: %w", id, err)
	}
	if ttl == -2 { // expired between the two reads
		return false, nil
	}
	c, err := decodeChat(raw)
	if err != nil {
		return false, fmt.Errorf("moving chat %s: %w", id, err)
	}
	seq := c.Seq
	if seq == 0 {
		if score, err := rdb.ZScore(ctx, oldChatIndex, id).Result(); err == nil {
			seq = int64(score)
		}
	}
	var ms, endAt int64
	if ttl > 0 {
		ms = max(ttl.Milliseconds(), 1)
		endAt = now.UnixMilli() + ms
	}
	flag := func(b bool) int {
		if b {
			return 1
		}
		return 0
	}
	b := chatBucket(id)
	if err := moveIn.Run(ctx, rdb, []string{chatKey(id), bucketKey(b, setIndex), bucketKey(b, setOpen), bucketKey(b, setPending), bucketKey(b, setEnds)},
		raw, ms, seq, flag(!c.State.Final()), flag(c.HasWork()), endAt, id).Err(); err != nil {
		return false, fmt.Errorf("moving chat %s: %w", id, err)
	}
	if err := rdb.Del(ctx, old).Err(); err != nil {
		return false, fmt.Errorf("moving chat %s: %w", id, err)
	}
	return true, nil
}

// movePoolKey moves one of the pool's keys to its name under poolPrefix, merged with what this
// version wrote there since (a string written since is the newer and stays; a set gains the old
// members; a sorted set of expiries keeps the later of each), with the later expiry, then deletes the
// old key. Each step is one slot's; a crash in between leaves the old key, and moving it again is
// harmless.
func movePoolKey(ctx context.Context, rdb redis.UniversalClient, old string) error {
	moved := poolPrefix + strings.TrimPrefix(old, "optin:")
	ttl, err := rdb.PTTL(ctx, old).Result()
	if err != nil {
		return err
	}
	typ, err := rdb.Type(ctx, old).Result()
	if err != nil {
		return err
	}
	switch typ {
	case "none":
		return nil
	case "string":
		v, err := rdb.Get(ctx, old).Result()
		if errors.Is(err, redis.Nil) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := rdb.SetArgs(ctx, moved, v, redis.SetArgs{Mode: "NX", TTL: max(ttl, 0)}).Err(); err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
	case "set":
		members, err := rdb.SMembers(ctx, old).Result()
		if err != nil {
			return err
		}
		if len(members) > 0 {
			if err := rdb.SAdd(ctx, moved, anys(members)...).Err(); err != nil {
				return err
			}
			if err := laterExpiry(ctx, rdb, moved, ttl); err != nil {
				return err
			}
		}
	case "zset":
		zs, err := rdb.ZRangeWithScores(ctx, old, 0, -1).Result()
		if err != nil {
			return err
		}
		if len(zs) > 0 {
			if err := rdb.ZAddGT(ctx, moved, zs...).Err(); err != nil {
				return err
			}
			if err := laterExpiry(ctx, rdb, moved, ttl); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("moving %s: a %s, want a string, set or sorted set", old, typ)
	}
	return rdb.Del(ctx, old).Err()
}

// laterExpiry gives key the old key's expiry ttl when that is later than its own; a key that does not
// expire keeps no expiry only if the old one had none.
func laterExpiry(ctx context.Context, rdb redis.UniversalClient, key string, ttl time.Duration) error {
	if ttl <= 0 {
		return nil
	}
	cur, err := rdb.PTTL(ctx, key).Result()
	if err != nil || (cur > 0 && cur >= ttl) {
		return err
	}
	return rdb.PExpire(ctx, key, ttl).Err()
}

func anys(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// Migrate moves the chats and pairs an earlier version stored under names without hash tags to
// today's names, once: call it at start, before serving. One replica migrates under a lease while the
// others wait for it (or take over if its lease lapses); a replica that finds the migration recorded
// returns at once. Safe to run while other replicas of this version serve: each key moves in steps of
// one slot that keep what this version wrote since, a chat read meanwhile is moved by the read, and
// running it again (after a crash) finishes what is left. Replicas of the earlier version must be
// stopped first: they would go on writing the old names.
func (s *Store) Migrate(ctx context.Context) error {
	if s.migrated.Load() {
		return nil
	}
	token := make([]byte, 16)
	_, _ = rand.Read(token)
	owner := hex.EncodeToString(token)
	for {
		done, err := s.rdb.Exists(ctx, migratedKey).Result()
		if err != nil {
			return fmt.Errorf("migrating keys: %w", err)
		}
		if done == 1 {
			s.migrated.Store(true)
			return nil
		}
		took, err := lock.Run(ctx, s.rdb, []string{migrateLease}, owner, migrateTerm.Milliseconds()).Int()
		if err != nil {
			return fmt.Errorf("migrating keys: %w", err)
		}
		if took == 1 {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for another replica's migration: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	defer unlock.Run(context.WithoutCancel(ctx), s.rdb, []string{migrateLease}, owner)
	var seen atomic.Int64
	err := s.scan(ctx, "optin:*", func(key string) error {
		if seen.Add(1)%migrateRenew == 0 {
			if n, err := lock.Run(ctx, s.rdb, []string{migrateLease}, owner, migrateTerm.Milliseconds()).Int(); err != nil || n != 1 {
				return fmt.Errorf("the migration's lease was lost: %v", err)
			}
		}
		switch {
		case strings.HasPrefix(key, oldChatPrefix):
			_, err := moveChat(ctx, s.rdb, strings.TrimPrefix(key, oldChatPrefix), time.Now())
			return err
		case key == oldNumbers:
			return movePoolKey(ctx, s.rdb, key)
		}
		for _, prefix := range oldPoolPrefixes {
			if strings.HasPrefix(key, prefix) {
				return movePoolKey(ctx, s.rdb, key)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("migrating keys: %w", err)
	}
	// The chats' old index and sets: every chat in them was moved with its own.
	for _, key := range []string{oldChatIndex, oldChatEnds, oldOpenSet, oldPendingSet, oldSetsMarker} {
		if err := s.rdb.Del(ctx, key).Err(); err != nil {
			return fmt.Errorf("migrating keys: %w", err)
		}
	}
	if err := s.rdb.Set(ctx, migratedKey, time.Now().UTC().Format(time.RFC3339), 0).Err(); err != nil {
		return fmt.Errorf("migrating keys: %w", err)
	}
	s.migrated.Store(true)
	return nil
}

// scan calls fn for every key that matches pattern, on every master of a cluster.
func (s *Store) scan(ctx context.Context, pattern string, fn func(key string) error) error {
	each := func(ctx context.Context, node redis.UniversalClient) error {
		iter := node.Scan(ctx, 0, pattern, 500).Iterator()
		for iter.Next(ctx) {
			if err := fn(iter.Val()); err != nil {
				return err
			}
		}
		return iter.Err()
	}
	if cluster, ok := s.rdb.(*redis.ClusterClient); ok {
		return cluster.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error { return each(ctx, node) })
	}
	return each(ctx, s.rdb)
}
