// Package redisstore is the optin.Store shared by every replica: one Redis hash per conversation,
// changed only by Lua scripts so that claims are atomic across replicas; and the stores of chats, number
// pairs, windows, revocations and rate limits beside it.
//
// It runs on one Redis, on a master behind Sentinel, and on a Redis Cluster: every script is given all
// the keys it touches in KEYS, and the keys one script or WATCH transaction touches share a hash tag
// (the {…} part of the name), so that they live in one slot. Names before hash tags are moved by
// Migrate.
package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/optinkit/optin/internal/optin"
	"github.com/optinkit/optin/internal/redisconn"
)

// Store keeps flows in Redis.
type Store struct {
	rdb redis.UniversalClient
	// claims carries Claim only: the webhook's call has connections of its own, so that hundreds of
	// workers writing their flows cannot make an acknowledgement wait for a free connection.
	claims    redis.UniversalClient
	prefix    string
	retention time.Duration
	// replicas and replicaWait: see WaitForReplicas.
	replicas    int
	replicaWait time.Duration
	// migrated: see Migrate.
	migrated *atomic.Bool
	// syncKeys holds, per cluster master's address, a key of a slot it serves (see Sync).
	syncKeys sync.Map
}

var _ optin.Store = (*Store)(nil)

// Open connects to the Redis at url (redis://[user:pass@]host:port/db, rediss:// for TLS, or a master
// through Sentinel: see redisconn.Parse) and keeps finished flows for retention. It does not wait for
// Redis: call Ping.
func Open(url string, retention time.Duration) (*Store, error) {
	conn, err := redisconn.Parse(url)
	if err != nil {
		return nil, fmt.Errorf("parsing redis url: %w", err)
	}
	return New(conn.Universal(), conn.Universal(), retention), nil
}

// New returns a store on clients made by the caller: *redis.Client (one Redis, or Sentinel's failover
// client) or *redis.ClusterClient. claims carries the claims alone (see Store); it may be rdb. Close
// closes both.
func New(rdb, claims redis.UniversalClient, retention time.Duration) *Store {
	return &Store{rdb: rdb, claims: claims, prefix: "optin:flow:", retention: retention, migrated: new(atomic.Bool)}
}

// Ping reports whether Redis answers.
func (s *Store) Ping(ctx context.Context) error { return s.rdb.Ping(ctx).Err() }

// Close releases the connections.
func (s *Store) Close() error {
	if s.claims == s.rdb {
		return s.rdb.Close()
	}
	return errors.Join(s.rdb.Close(), s.claims.Close())
}

func (s *Store) key(conv string) string { return s.prefix + conv }

// claim creates the flow's hash unless it exists; it answers {} when it created it, else the hash.
var claim = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.call('HGETALL', KEYS[1])
end
redis.call('HSET', KEYS[1], 'customer', ARGV[1], 'trigger', ARGV[2], 'state', ARGV[3], 'started_at', ARGV[4], 'runs', 0, 'answer', ARGV[5], 'chat', ARGV[6])
return {}
`)

// begin counts a run of an existing flow and answers its hash ({} when there is none).
var begin = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {}
end
redis.call('HINCRBY', KEYS[1], 'runs', 1)
return redis.call('HGETALL', KEYS[1])
`)

// stepsDone records steps (ARGV: field, value, …) of a running flow; it answers 0 when there is none,
// and leaves a finished flow as compact as its finish made it.
var stepsDone = redis.NewScript(`
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  return 0
end
if state == 'running' then
  redis.call('HSET', KEYS[1], unpack(ARGV))
end
return 1
`)

// finish records the final state of a running flow and lets it expire; it answers 0 when there is no
// flow, and leaves a finished one as it is.
var finish = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then
  return 1
end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'detail', ARGV[2], 'finished_at', ARGV[3])
-- A finished flow answers later deliveries with its customer, trigger and state: drop the rest.
for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.sub(field, 1, 5) == 'step:' or field == 'started_at' or field == 'answer' or field == 'chat' then
    redis.call('HDEL', KEYS[1], field)
  end
end
if ARGV[2] == '' then
  redis.call('HDEL', KEYS[1], 'detail')
end
if tonumber(ARGV[4]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
return 1
`)

// Claim records f unless its conversation already has a flow.
func (s *Store) Claim(ctx context.Context, f optin.Flow) (optin.Flow, bool, error) {
	res, err := claim.Run(ctx, s.claims, []string{s.key(f.ConversationSid)},
		f.Customer, f.Trigger, string(f.State), f.StartedAt.UnixMilli(), string(f.Answer), strconv.FormatBool(f.Chat)).StringSlice()
	if err != nil {
		return optin.Flow{}, false, fmt.Errorf("claim: %w", err)
	}
	if len(res) == 0 {
		f.Steps, f.Runs = map[string]string{}, 0
		return f, true, nil
	}
	existing, err := decode(f.ConversationSid, res)
	return existing, false, err
}

// Begin counts a run and returns the flow.
func (s *Store) Begin(ctx context.Context, conversationSid string) (optin.Flow, error) {
	res, err := begin.Run(ctx, s.rdb, []string{s.key(conversationSid)}).StringSlice()
	if err != nil {
		return optin.Flow{}, fmt.Errorf("begin: %w", err)
	}
	if len(res) == 0 {
		return optin.Flow{}, fmt.Errorf("begin %s: %w", conversationSid, optin.ErrNoFlow)
	}
	// The run's count decides whether it looks for its messages before creating them: a run that a
	// failover forgot would create them again.
	if err := s.Sync(ctx); err != nil {
		return optin.Flow{}, fmt.Errorf("begin %s: %w", conversationSid, err)
	}
	return decode(conversationSid, res)
}

// WaitForReplicas makes Sync wait until n replicas hold every earlier write (Redis's WAIT), at most
// timeout; 0 (the default) makes Sync return at once: replication stays asynchronous.
func (s *Store) WaitForReplicas(n int, timeout time.Duration) { s.replicas, s.replicaWait = n, timeout }

// syncKey is written just before WAIT: WAIT counts the replicas that hold the caller's own last write,
// and the replication stream carries every connection's writes in order, so this one's covers them.
const syncKey = "optin:sync"

// Sync returns once the configured number of replicas hold every write made before it. On a cluster
// each master replicates its own slots: Sync waits on every master, with a key of a slot that master
// serves.
func (s *Store) Sync(ctx context.Context) error {
	if s.replicas == 0 {
		return nil
	}
	var cluster *redis.ClusterClient
	switch rdb := s.rdb.(type) {
	case *redis.Client:
		return s.waitOn(ctx, rdb, syncKey)
	case *redis.ClusterClient:
		cluster = rdb
	default:
		return fmt.Errorf("sync: cannot wait for replicas through a %T", s.rdb)
	}
	return cluster.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
		addr := node.Options().Addr
		if key, ok := s.syncKeys.Load(addr); ok {
			if err := s.waitOn(ctx, node, key.(string)); !isMoved(err) {
				return err
			}
		}
		// Find a key this master serves: a third of the slots are its with three masters, so a few
		// tries; again after a reshard moved the one it had.
		for i := range 256 {
			key := "optin:{sync:" + strconv.Itoa(i) + "}"
			err := s.waitOn(ctx, node, key)
			if isMoved(err) {
				continue
			}
			if err == nil {
				s.syncKeys.Store(addr, key)
			}
			return err
		}
		return fmt.Errorf("sync: no key of a slot served by %s", addr)
	})
}

func isMoved(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "MOVED ") || strings.Contains(err.Error(), "ASK "))
}

// waitOn writes key and waits for the replicas on one connection of rdb.
func (s *Store) waitOn(ctx context.Context, rdb *redis.Client, key string) error {
	conn := rdb.Conn()
	defer conn.Close()
	if err := conn.Set(ctx, key, "", 0).Err(); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	n, err := conn.Wait(ctx, s.replicas, s.replicaWait).Result()
	if err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	if int(n) < s.replicas {
		return fmt.Errorf("sync: %d of %d replicas acknowledged within %s", n, s.replicas, s.replicaWait)
	}
	return nil
}

// StepsDone records completed steps, in one round trip.
func (s *Store) StepsDone(ctx context.Context, conversationSid string, steps map[string]string) error {
	if len(steps) == 0 {
		return nil
	}
	args := make([]any, 0, 2*len(steps))
	for step, ref := range steps {
		args = append(args, "step:"+step, ref)
	}
	return s.changed(stepsDone.Run(ctx, s.rdb, []string{s.key(conversationSid)}, args...), "steps", conversationSid)
}

// Finish records the final state and starts the retention clock.
func (s *Store) Finish(ctx context.Context, conversationSid string, state optin.State, detail string) error {
	return s.changed(finish.Run(ctx, s.rdb, []string{s.key(conversationSid)},
		string(state), detail, time.Now().UnixMilli(), s.retention.Milliseconds()), "finish", conversationSid)
}

func (s *Store) changed(cmd *redis.Cmd, what, conv string) error {
	n, err := cmd.Int()
	switch {
	case err != nil:
		return fmt.Errorf("%s: %w", what, err)
	case n == 0:
		return fmt.Errorf("%s %s: %w", what, conv, optin.ErrNoFlow)
	}
	return nil
}

// Flow returns the conversation's flow.
func (s *Store) Flow(ctx context.Context, conversationSid string) (optin.Flow, error) {
	res, err := s.rdb.HGetAll(ctx, s.key(conversationSid)).Result()
	if err != nil {
		return optin.Flow{}, fmt.Errorf("flow %s: %w", conversationSid, err)
	}
	if len(res) == 0 {
		return optin.Flow{}, fmt.Errorf("flow %s: %w", conversationSid, optin.ErrNoFlow)
	}
	pairs := make([]string, 0, 2*len(res))
	for k, v := range res {
		pairs = append(pairs, k, v)
	}
	return decode(conversationSid, pairs)
}

func decode(conv string, pairs []string) (optin.Flow, error) {
	if len(pairs)%2 != 0 {
		return optin.Flow{}, errors.New("decoding flow: odd reply")
	}
	f := optin.Flow{ConversationSid: conv, Steps: map[string]string{}}
	for i := 0; i < len(pairs); i += 2 {
		k, v := pairs[i], pairs[i+1]
		switch {
		case k == "customer":
			f.Customer = v
		case k == "trigger":
			f.Trigger = v
		case k == "state":
			f.State = optin.State(v)
		case k == "detail":
			f.Detail = v
		case k == "answer":
			f.Answer = optin.Answer(v)
		case k == "chat":
			f.Chat = v == "true"
		case k == "runs":
			f.Runs, _ = strconv.Atoi(v)
		case k == "started_at":
			f.StartedAt = millis(v)
		case k == "finished_at":
			f.FinishedAt = millis(v)
		case strings.HasPrefix(k, "step:"):
			f.Steps[strings.TrimPrefix(k, "step:")] = v
		}
	}
	return f, nil
}

func millis(v string) time.Time {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(n)
}
