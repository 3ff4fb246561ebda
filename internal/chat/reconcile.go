package chat

import (
	"cmp"
	"context"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/time/rate"

	"github.com/optinkit/optin/internal/conversation"
	"github.com/optinkit/optin/internal/twiliocall"
)

// Names of the leases that let one replica at a time sweep all chats, or reconcile one shard of them
// (reconcileLease, then ":shard/shards").
const (
	reconcileLease = "~reconcile"
	outboxLease    = "~outbox"
)

// DefaultReconcileShards is how many shards the open chats are reconciled in: each its own job under
// its own lease, so that replicas share the work and one that dies stalls only its shards.
const DefaultReconcileShards = 8

// ShardOf is the shard, of n, a chat is reconciled in: FNV-1a of its id modulo n, so that every replica
// and version agrees, and a store bucketing ids the same way by a multiple of n reads a shard's buckets
// only.
func ShardOf(id string, n int) int {
	if n <= 1 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(id))
	return int(h.Sum32() % uint32(n))
}

// StartGiveUp is how long a start cut off mid-way is resumed by the reconciler before the chat is
// failed instead: its caller was told to repeat the call and has not, and Twilio has not let it finish.
const StartGiveUp = 15 * time.Minute

// ReconcileReport counts what one reconcile did.
type ReconcileReport struct {
	// Checked counts the open chats looked at; Closed those found closed at Twilio; Concluded those
	// whose recorded end was carried out; Resumed and Failed the starts cut off mid-way; Recovered the
	// failed deliveries whose report never came.
	Checked, Closed, Concluded, Resumed, Failed, Recovered int
}

// Reconcile brings every open chat in line with Twilio, for what a webhook never told (Twilio calls a
// webhook once, and may lose it) or a process never finished:
//   - a chat whose end is recorded but not carried out (its close failed, or its closer died) is
//     concluded;
//   - a start cut off mid-way (its lease free past the budget) is resumed, or failed after StartGiveUp;
//   - every other chat's conversation is read (at most ReconcileRate a second): one closed or gone at
//     Twilio closes the chat (expired, or the ending recorded); one still open has its numbers' leases
//     renewed, so that a chat active longer than a lease lasts keeps them.
func (s *Service) Reconcile(ctx context.Context) (ReconcileReport, error) {
	return s.ReconcileShard(ctx, 0, 1)
}

// ReconcileShard reconciles the open chats of one shard of shards (shardOf), at its share of
// ReconcileRate: the shards together keep to the rate, however the replicas share them.
func (s *Service) ReconcileShard(ctx context.Context, shard, shards int) (ReconcileReport, error) {
	var rep ReconcileReport
	ids, err := s.store.Open(ctx, shard, shards)
	if err != nil {
		return rep, fmt.Errorf("%w: listing open chats: %w", conversation.ErrUnavailable, err)
	}
	reads := rate.NewLimiter(rate.Limit(s.cfg.ReconcileRate/float64(max(shards, 1))), 1)
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		c, err := s.store.Get(ctx, id)
		if err != nil || c.State.Final() {
			continue // forgotten or finished since it was listed
		}
		rep.Checked++
		log := zerolog.Ctx(ctx).With().Str("chat_id", c.ID).Logger()
		cctx := log.WithContext(ctx)
		switch {
		case c.State == StateStarting || c.Ending != nil:
			if s.now().Sub(c.UpdatedAt) < s.cfg.StartBudget+leaseMargin {
				continue // its start or end may still be running
			}
			s.reviveLocked(cctx, c, &rep)
		default:
			if err := reads.Wait(ctx); err != nil {
				return rep, err
			}
			_, closed, err := s.conv.FindConversation(cctx, c.ConversationSid)
			if twiliocall.IsNotFound(err) {
				closed, err = true, nil
			}
			if err != nil {
				log.Warn().Err(err).Msg("reconcile: reading the chat's conversation")
				continue
			}
			if !closed {
				// Open at Twilio: its numbers stay bound, so their leases must not lapse under it.
				if err := s.renewNumbers(cctx, c.ID); err != nil {
					log.Warn().Err(err).Msg("reconcile: renewing the chat's numbers")
				}
				n, err := s.lostReports(cctx, c, reads)
				if err != nil {
					log.Warn().Err(err).Msg("reconcile: reading the chat's deliveries")
				}
				rep.Recovered += n
				continue
			}
			if _, err := s.closed(cctx, c.ID, Ending{State: StateClosed, Reason: ReasonExpired}); err != nil {
				log.Warn().Err(err).Msg("reconcile: closing a chat Twilio closed")
				continue
			}
			log.Info().Msg("reconcile: the chat's conversation was closed at Twilio")
			rep.Closed++
		}
	}
	return rep, nil
}

// lostReports finds the failed deliveries among the chat's newest messages that no report told of
// (Twilio calls a webhook once, and a call may be lost) and records them for tend, as their report
// would have: a message held late rather than never. What was acted on already is skipped.
func (s *Service) lostReports(ctx context.Context, c Chat, reads *rate.Limiter) (int, error) {
	if c.State != StateInvited && !c.relaying() {
		return 0, nil
	}
	if err := reads.Wait(ctx); err != nil {
		return 0, err
	}
	ds, err := s.conv.RecentDeliveries(ctx, c.ConversationSid, twiliocall.MarkerLookback)
	if err != nil {
		return 0, err
	}
	if err := s.windowsSeen(ctx, c, ds); err != nil {
		return 0, err
	}
	// What the chat acted on, or will: a failure handled, one recorded, a message held.
	known := make(map[string]bool, len(c.Undelivered))
	for _, u := range c.Undelivered {
		known[u.MessageSid] = true
	}
	for _, h := range slices.Concat(c.Customer.Held, c.Rider.Held) {
		known[h.MessageSid] = true
	}
	var found []Undelivered
	for _, d := range ds {
		if !d.Failed || known[d.Sid] || c.Handled.Has(d.Index) {
			continue
		}
		if err := reads.Wait(ctx); err != nil {
			return 0, err
		}
		codes, err := s.conv.FailureCodes(ctx, c.ConversationSid, d.Sid)
		if err != nil {
			return 0, err
		}
		for _, code := range codes {
			if code == codeWindowClosed || code == codeNotOnWhatsApp || code == codeNotWhatsAppNum {
				found = append(found, Undelivered{MessageSid: d.Sid, Code: code, Index: d.Index, Indexed: true})
				break
			}
		}
	}
	if len(found) == 0 {
		return 0, nil
	}
	n, err := s.failed(ctx, c.ID, found)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", conversation.ErrUnavailable, err)
	}
	if n > 0 {
		zerolog.Ctx(ctx).Info().Int("failed_deliveries", n).Msg("reconcile: failed deliveries no report told of")
		s.later(ctx, c.ID)
	}
	return n, nil
}

// windowsSeen records the windows the parties' newest messages opened, for an onMessageAdded that was
// lost; held messages waiting for such a window then go. Recording one twice is harmless.
func (s *Service) windowsSeen(ctx context.Context, c Chat, ds []Delivery) error {
	if s.cfg.Windows == nil || !c.relaying() {
		return nil
	}
	opened := false
	for _, role := range []string{roleCustomer, roleRider} {
		p := c.party(role)
		if p.Channel() != ChannelWhatsApp {
			continue
		}
		// The newest message of the party's (ds is newest first).
		i := slices.IndexFunc(ds, func(d Delivery) bool { return d.Author == p.Address && !d.Ours && !d.Created.IsZero() })
		if i < 0 {
			continue
		}
		w, err := s.cfg.Windows.Window(ctx, p.Address, p.ProxyAddress)
		if err != nil {
			return fmt.Errorf("%w: reading a window: %w", conversation.ErrUnavailable, err)
		}
		if !ds[i].Created.After(w.LastInbound) {
			continue
		}
		if err := s.cfg.Windows.Opened(ctx, p.Address, p.ProxyAddress, ds[i].Created); err != nil {
			return fmt.Errorf("%w: recording a window: %w", conversation.ErrUnavailable, err)
		}
		zerolog.Ctx(ctx).Info().Str("party", role).Msg("reconcile: a window whose message no webhook told of")
		opened = opened || len(p.Held) > 0 // what was held for them may go now
	}
	if opened {
		if err := s.recordWork(ctx, c.ID); err != nil {
			return fmt.Errorf("%w: %w", conversation.ErrUnavailable, err)
		}
		s.later(ctx, c.ID)
	}
	return nil
}

// reviveLocked finishes, under the chat's lease, what a start or an end left undone.
func (s *Service) reviveLocked(ctx context.Context, c Chat, rep *ReconcileReport) {
	owner := newOwner()
	locked, err := s.store.Lock(ctx, c.ID, owner, s.cfg.StartBudget+leaseMargin)
	if err != nil || !locked {
		return // its start or end is running after all
	}
	defer func() { _ = s.store.Unlock(context.WithoutCancel(ctx), c.ID, owner) }()
	if c, err = s.store.Get(ctx, c.ID); err != nil || c.State.Final() {
		return
	}
	log := zerolog.Ctx(ctx)
	bctx, cancel := context.WithTimeout(ctx, s.cfg.StartBudget)
	defer cancel()
	switch {
	case c.Ending != nil:
		if _, err := s.conclude(bctx, c, *c.Ending); err != nil {
			log.Warn().Err(err).Msg("reconcile: ending a chat")
			return
		}
		rep.Concluded++
	case s.now().Sub(c.CreatedAt) > StartGiveUp:
		end := Ending{State: StateFailed, Reason: ReasonFailed, Error: &Failure{Detail: "the start did not finish"}}
		if _, err := s.conclude(bctx, c, end); err != nil {
			log.Warn().Err(err).Msg("reconcile: failing a start that did not finish")
			return
		}
		rep.Failed++
	default:
		if _, err := s.runStart(bctx, c, true); err != nil {
			log.Warn().Err(err).Msg("reconcile: resuming a start")
			return
		}
		rep.Resumed++
	}
}

// Maintain runs the upkeep of chats until ctx ends, as independent jobs, so that a long reconcile
// (thousands of open chats at ReconcileRate) never holds up the outbox: the outbox swept every
// OutboxInterval (or ReconcileInterval, when shorter) and each shard of the chats reconciled every
// ReconcileInterval, each job by one replica at a time (a lease in the store, which a run stops at once
// when it loses) — the replicas share the shards.
func (s *Service) Maintain(ctx context.Context) {
	every, _ := s.outboxTimes()
	var wg sync.WaitGroup
	wg.Go(func() { s.every(ctx, outboxLease, every, s.sweepOnce) })
	shards := cmp.Or(s.cfg.ReconcileShards, DefaultReconcileShards)
	for shard := range shards {
		name := fmt.Sprintf("%s:%d/%d", reconcileLease, shard, shards)
		wg.Go(func() {
			s.every(ctx, name, s.cfg.ReconcileInterval, func(ctx context.Context) { s.reconcileOnce(ctx, shard, shards) })
		})
	}
	wg.Wait()
}

// every runs job each interval, under the lease name, until ctx ends. The lease lasts two intervals and
// is renewed a third of the way through it while the job runs, so another replica takes it only once
// the holder stopped; a job whose lease cannot be renewed (taken over, or the store unreachable) is
// cancelled, so that two replicas never run it at once for long.
func (s *Service) every(ctx context.Context, name string, interval time.Duration, job func(context.Context)) {
	owner := newOwner()
	ttl := 2 * interval
	// Each replica ticks at its own phase, so that whichever comes first after a run takes the next:
	// the replicas share the jobs (a shard each, in turn) rather than the first to start keeping them.
	phase := time.NewTimer(time.Duration(rand.Int64N(int64(interval))))
	select {
	case <-ctx.Done():
		phase.Stop()
		return
	case <-phase.C:
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	log := zerolog.Ctx(ctx)
	for first := true; ; first = false {
		if !first {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
		// Run at most once an interval, fleet-wide: a run marks the job done for most of one (a
		// mark taken by a fresh owner fails while any other holds it).
		if done, err := s.store.Lock(ctx, name+":ran", newOwner(), interval*9/10); err != nil || !done {
			if err != nil {
				log.Warn().Err(err).Str("lease", name).Msg("upkeep: marking the run")
			}
			continue
		}
		ok, err := s.store.Lock(ctx, name, owner, ttl)
		if err != nil {
			log.Warn().Err(err).Str("lease", name).Msg("upkeep: taking the lease")
			continue
		}
		if !ok {
			continue // another replica runs it
		}
		jctx, cancel := context.WithCancel(ctx)
		renewed := make(chan struct{})
		go func() { defer close(renewed); s.keepLease(jctx, cancel, name, owner, ttl) }()
		job(jctx)
		cancel()
		<-renewed
		// Let go: the next run is whoever ticks first once the mark lapses.
		if err := s.store.Unlock(context.WithoutCancel(ctx), name, owner); err != nil {
			log.Warn().Err(err).Str("lease", name).Msg("upkeep: giving the lease back")
		}
	}
}

// keepLease keeps the lease name that owner holds, renewing it every third of its ttl until ctx ends; when
// a renewal fails or finds the lease taken it cancels the job.
func (s *Service) keepLease(ctx context.Context, cancel context.CancelFunc, name, owner string, ttl time.Duration) {
	t := time.NewTicker(ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ok, err := s.store.Lock(ctx, name, owner, ttl)
		if err != nil || !ok {
			if ctx.Err() == nil {
				zerolog.Ctx(ctx).Warn().Err(err).Str("lease", name).Msg("upkeep: lease lost; stopping this run")
			}
			cancel()
			return
		}
	}
}

// sweepOnce is one run of the outbox sweep, counted and logged.
func (s *Service) sweepOnce(ctx context.Context) {
	log := zerolog.Ctx(ctx)
	n, err := s.SweepOutbox(ctx)
	if s.cfg.Observer != nil && n > 0 {
		s.cfg.Observer.OutboxResent(n)
	}
	if err != nil {
		log.Warn().Err(err).Int("handed_over", n).Msg("outbox sweep")
	} else if n > 0 {
		log.Info().Int("handed_over", n).Msg("outbox sweep handed over events")
	}
}

// reconcileOnce is one reconcile, counted and logged.
func (s *Service) reconcileOnce(ctx context.Context, shard, shards int) {
	log := zerolog.Ctx(ctx).With().Int("shard", shard).Logger()
	rep, err := s.ReconcileShard(ctx, shard, shards)
	if o := s.cfg.Observer; o != nil {
		for outcome, n := range map[string]int{"closed": rep.Closed, "concluded": rep.Concluded, "resumed": rep.Resumed, "failed": rep.Failed,
			"delivery_recovered": rep.Recovered} {
			if n > 0 {
				o.Reconciled(outcome, n)
			}
		}
	}
	ev := log.Info()
	if err != nil {
		ev = log.Warn().Err(err)
	}
	ev.Int("checked", rep.Checked).Int("closed", rep.Closed).Int("concluded", rep.Concluded).
		Int("resumed", rep.Resumed).Int("failed", rep.Failed).Int("deliveries_recovered", rep.Recovered).Msg("chats reconciled")
}
