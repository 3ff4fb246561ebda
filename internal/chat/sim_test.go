package chat

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/optinkit/optin/internal/conversation"
	"github.com/optinkit/optin/internal/guard"
	"github.com/optinkit/optin/internal/numberpool"
	"github.com/optinkit/optin/internal/twiliocall"
)

// The simulation runs several replicas of the chat service against one store, one Twilio and one pair
// of number pools, on a virtual clock, one step at a time, every choice drawn from a seeded source:
// starts, ends, the customer's answers, Twilio's close, parties writing, delivery failures, webhooks
// lost, late, repeated and replayed, Twilio's refusals and outages, answers lost after Twilio acted, a
// process killed in the middle of
// any call (its later calls fail, its leases stay until they lapse), sweeps, reconciles and time
// passing. After every step it checks what must always hold; at the end, with the faults off and the
// upkeep run until nothing changes, what must hold once everything settled. The same seed replays the
// same run: a failure prints it.
var (
	simSeed  = flag.Uint64("sim.seed", 0, "replay the simulation from this seed (0: the test's seeds)")
	simSteps = flag.Int("sim.steps", 0, "steps of each simulation run (0: a CI-sized slice)")
	simRuns  = flag.Int("sim.runs", 0, "simulation runs from consecutive seeds (0: a CI-sized slice)")
	simFirst = flag.Uint64("sim.first", 1, "the first of the runs' consecutive seeds")
)

// simFoundSeeds are seeds past the CI slice that found a bug (each also has a test of its own where
// one could be written): run in every CI slice as well. A seed replays its run only while the
// simulation draws the same way, so they stay as coverage more than as replays.
var simFoundSeeds = []uint64{36, 66, 119, 264, 280}

// TestSimulation runs the simulation from seeds first..first+runs-1 (or -sim.seed alone), each for steps steps;
// scripts/simulate.sh runs it long. A seed replays the same run only while the simulation draws the
// same way: a bug a seed finds is kept as a test of its own as well.
func TestSimulation(t *testing.T) {
	runs, steps := 20, 500
	if *simRuns > 0 {
		runs = *simRuns
	}
	if *simSteps > 0 {
		steps = *simSteps
	}
	seeds := make([]uint64, 0, runs+len(simFoundSeeds))
	for seed := range uint64(runs) {
		seeds = append(seeds, *simFirst+seed)
	}
	if *simRuns == 0 {
		seeds = append(seeds, simFoundSeeds...)
	}
	if *simSeed != 0 {
		seeds = []uint64{*simSeed}
	}
	total := 0
	stats := simStats{states: map[State]int{}, dropped: map[string]int{}, callsRefused: map[string]int{}}
	for _, seed := range seeds {
		sm := newSim(t, seed, 3)
		for range steps {
			sm.step()
			if t.Failed() {
				t.Fatalf("simulation seed %d failed at step %d; replay with: go test ./internal/chat -run 'TestSimulation$' -sim.seed=%d -sim.steps=%d\n%s",
					seed, sm.steps, seed, steps, sm.tail())
			}
		}
		sm.settle()
		if t.Failed() {
			t.Fatalf("simulation seed %d failed once settled after %d steps; replay with -sim.seed=%d -sim.steps=%d\n%s", seed, sm.steps, seed, steps, sm.tail())
		}
		total += sm.steps
		stats.add(sm)
	}
	t.Logf("%d runs, %d steps in all; %s", len(seeds), total, stats)
}

// The same seed makes the same run, step for step: a failure replays from its seed.
func TestSimulationIsDeterministic(t *testing.T) {
	run := func() []string {
		sm := newSim(t, 7, 3)
		for range 400 {
			sm.step()
		}
		sm.settle()
		return sm.log
	}
	a, b := run(), run()
	if !slices.Equal(a, b) {
		for i := range min(len(a), len(b)) {
			if a[i] != b[i] {
				t.Fatalf("the runs part at line %d:\n%s\n%s", i, a[i], b[i])
			}
		}
		t.Fatalf("runs of %d and %d lines", len(a), len(b))
	}
}

// simStats counts what the runs reached, so that a run that exercises nothing is seen.
type simStats struct {
	states                                    map[State]int
	held, resent, nudges, kills, moved, chats int
	dropped                                   map[string]int
	calls, callsEnded                         int
	callsRefused                              map[string]int
	guarded, notices, afterEnd                int
}

func (st simStats) String() string {
	return fmt.Sprintf("chats %d, final states %v, held %d, sent again %d, dropped %v, nudges %d, moved to SMS %d, kills %d, calls connected %d, ended %d, refused %v, messages guarded %d, notices %d, answered after the end %d",
		st.chats, st.states, st.held, st.resent, st.dropped, st.nudges, st.moved, st.kills, st.calls, st.callsEnded, st.callsRefused,
		st.guarded, st.notices, st.afterEnd)
}

// add counts a settled run.
func (st *simStats) add(sm *sim) {
	held, resent, nudges, dropped := sm.obs.counts()
	st.held, st.resent, st.nudges, st.moved = st.held+held, st.resent+resent, st.nudges+nudges, st.moved+sm.obs.fallbacks
	for k, v := range dropped {
		st.dropped[k] += v
	}
	st.calls, st.callsEnded = st.calls+sm.obs.callsStarted, st.callsEnded+sm.obs.callsEnded
	for k, v := range sm.obs.callsRefused {
		st.callsRefused[k] += v
	}
	for _, answers := range sm.afterEnd {
		st.afterEnd += len(answers)
	}
	for _, l := range sm.log {
		if strings.HasPrefix(l, "  killed") {
			st.kills++
		}
	}
	for id := range sm.requests {
		if c, err := sm.peek(context.Background(), id); err == nil {
			st.chats++
			st.states[c.State]++
			st.guarded += c.GuardedCount
			if c.ConversationSid != "" {
				st.notices += len(sm.notices(c.ConversationSid))
			}
		}
	}
}

// simNumbers is the numberpool store of the simulation: the real pool's logic runs on it.
type simNumbers struct {
	mu      sync.Mutex
	leased  map[numberpool.Pair]string // pair -> chat
	blocked map[numberpool.Pair]time.Time
	last    map[string]string
	// chats is the pair index: the chat that last leased (number, address), both bare E.164.
	chats map[[2]string]string
	now   func() time.Time
	down  func() error
	// landed, when set, sees each write after it was made and may fail the call all the same (its
	// replicas did not acknowledge it); acks is the count of acknowledged writes the chat store shares
	// (one Redis). before is the pool as it was before the first write not acknowledged since the last
	// acknowledgement anywhere (at beforeAt): a failover sets it back.
	landed   func(op string) error
	acks     *atomic.Int64
	before   *simNumbers
	beforeAt int64
}

// write makes one change to the pool, as a script does, then hears whether its replicas took it.
// Callers hold p.mu.
func (p *simNumbers) write(op string, change func()) error {
	if p.landed == nil {
		change()
		return nil
	}
	var kept *simNumbers
	if p.before == nil || p.beforeAt != p.acks.Load() {
		kept = &simNumbers{leased: maps.Clone(p.leased), blocked: maps.Clone(p.blocked), last: maps.Clone(p.last), chats: maps.Clone(p.chats)}
	}
	change()
	if err := p.landed(op); err != nil {
		if kept != nil {
			p.before, p.beforeAt = kept, p.acks.Load()
		}
		return err
	}
	p.acks.Add(1)
	p.before = nil
	return nil
}

// failover loses the pool's writes no replica acknowledged; it reports whether there were any.
func (p *simNumbers) failover() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	b := p.before
	p.before = nil
	if b == nil || p.beforeAt != p.acks.Load() {
		return false
	}
	p.leased, p.blocked, p.last, p.chats = b.leased, b.blocked, b.last, b.chats
	return true
}

func (p *simNumbers) Take(_ context.Context, chatID string, pairs []numberpool.Pair) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.down(); err != nil {
		return false, err
	}
	for _, pr := range pairs {
		if _, ok := p.leased[pr]; ok {
			return false, nil
		}
		if until, ok := p.blocked[pr]; ok && p.now().Before(until) {
			return false, nil
		}
	}
	err := p.write("lease", func() {
		for _, pr := range pairs {
			p.leased[pr], p.last[pr.Address] = chatID, pr.Number
			p.chats[[2]string{E164(pr.Number), E164(pr.Address)}] = chatID
		}
	})
	return err == nil, err
}

func (p *simNumbers) ChatOf(_ context.Context, number, address string) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.chats[[2]string{E164(number), E164(address)}], p.down()
}

func (p *simNumbers) Release(_ context.Context, chatID string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.down(); err != nil {
		return err
	}
	return p.write("release", func() {
		maps.DeleteFunc(p.leased, func(_ numberpool.Pair, c string) bool { return c == chatID })
	})
}

func (p *simNumbers) ReleaseAddress(_ context.Context, chatID, address string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.down(); err != nil {
		return err
	}
	return p.write("release an address", func() {
		maps.DeleteFunc(p.leased, func(pr numberpool.Pair, c string) bool { return c == chatID && pr.Address == address })
	})
}

func (p *simNumbers) Renew(context.Context, string) error { return p.down() }

func (p *simNumbers) Block(_ context.Context, pr numberpool.Pair, ttl time.Duration) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.down(); err != nil {
		return err
	}
	return p.write("block", func() {
		p.blocked[pr] = p.now().Add(ttl)
		delete(p.leased, pr)
	})
}

func (p *simNumbers) Last(_ context.Context, address string) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last[address], p.down()
}

func (p *simNumbers) InUse(context.Context) (map[string]int, error) { return nil, nil }

// held returns the pairs leased to chatID.
func (p *simNumbers) held(chatID string) []numberpool.Pair {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []numberpool.Pair
	for pr, c := range p.leased {
		if c == chatID {
			out = append(out, pr)
		}
	}
	return out
}

// simNotifier hands events over at once; the simulation delivers them as the callback worker does.
type simNotifier struct {
	mu     sync.Mutex
	handed map[string]bool // chat|event
	down   func() error
}

func (n *simNotifier) Notify(_ context.Context, chatID, eventID string) error {
	if err := n.down(); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.handed[chatID+"|"+eventID] = true
	return nil
}

// The people of the simulation: customers on WhatsApp (one not on it), riders, and the numbers.
var (
	simCustomers = []string{"whatsapp:+15550001101", "whatsapp:+15550001102", "whatsapp:+15550001103"}
	simRiders    = []string{"whatsapp:+15550002201", "whatsapp:+15550002202"}
	simWhatsApp  = []string{"whatsapp:+15550100001", "whatsapp:+15550100002"}
	simSMS       = []string{"+15550109001"}
)

// sim is one simulation run.
type sim struct {
	t        testing.TB
	seed     uint64
	steps    int
	clock    *clock
	store    *fakeStore
	tw       *fakeTwilio
	numbers  *simNumbers
	windows  *fakeWindows
	obs      *fakeObserver
	notes    *simNotifier
	replicas []*Service
	// inbox holds the webhooks Twilio has yet to deliver.
	inbox []conversation.Event
	// requests are the start requests of the chats made so far, by id.
	requests map[string]StartRequest
	// finals are the final states seen, by chat.
	finals map[string]State
	// delivered are the events the platform got, by chat, in order.
	delivered map[string][]string
	// killed: the running step's process died — its later calls fail.
	killed bool
	// depth counts the steps taken in the middle of another's Twilio call (one at most).
	depth int
	// faults on: Twilio refuses, the process may die; off while the run settles.
	faults bool
	rng    *rand.Rand
	log    []string
	// answered are the conversations whose customer said yes, so that the opt-in's stages come once.
	answered map[string]bool
	// answering are the customers' yeses whose opt-in did not finish (by conversation: the answer): the
	// opt-in's queue runs them again until they do.
	answering map[string]string
	// uncounted are the transitions of writes their writers heard failed, by chat: not counted,
	// unless a failover lost them (and they were made again).
	uncounted map[string]int
	// uncountedHeld is, by chat, how many held messages such writes added (held, or no longer early)
	// less those they took out (sent again, dropped): not counted either.
	uncountedHeld map[string]int
	// uncountedEnded is, by chat, how many calls such writes recorded ended; uncountedStarted how many
	// they recorded.
	uncountedEnded, uncountedStarted map[string]int
	// refusedNotices are the notices Twilio refused for good, by chat|notice: dropped, not sent.
	refusedNotices map[string]bool
	// guardMode is the guard's mode in this run: redact or block, by the seed.
	guardMode guard.Mode
	// afterEnd are the answers to parties writing after the end, by chat and role: when.
	afterEnd map[string][]time.Time
	// platformRuns is set while the platform takes its events, or the simulation reads what it knows:
	// those calls are not the service's, and no fault comes to them.
	platformRuns bool
	// calls are the calls routed, by CallSid: the chat, and whether its end was reported.
	calls map[string]*simCall
}

// simCall is a call the service connected.
type simCall struct {
	chat, from, to, caller string
	ended                  bool
}

func newSim(t testing.TB, seed uint64, replicas int) *sim {
	clk := &clock{t: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	sm := &sim{t: t, seed: seed, clock: clk, store: newFakeStore(clk.now), tw: newFakeTwilio(),
		windows: &fakeWindows{last: map[string]time.Time{}}, obs: &fakeObserver{}, requests: map[string]StartRequest{},
		finals: map[string]State{}, delivered: map[string][]string{}, faults: true, answered: map[string]bool{}, answering: map[string]string{}, calls: map[string]*simCall{}, uncounted: map[string]int{},
		uncountedHeld: map[string]int{}, uncountedEnded: map[string]int{}, uncountedStarted: map[string]int{},
		afterEnd: map[string][]time.Time{}, refusedNotices: map[string]bool{}, guardMode: []guard.Mode{guard.Redact, guard.Block}[seed%2],
		rng: rand.New(rand.NewPCG(seed, seed^0x5eed))}
	down := func() error {
		if sm.killed {
			return errors.New("process killed")
		}
		// A store (or queue) call that fails on its own, the process alive: a Redis blip.
		if sm.faults && !sm.platformRuns && sm.pick(400) == 0 {
			sm.note("  a store call failed (a blip)")
			return errors.New("redis: i/o timeout")
		}
		return nil
	}
	sm.store.down = down
	// A write whose replicas did not acknowledge it lands, and its writer hears a failure; a failover
	// loses it, unless a write after it was acknowledged.
	sm.store.unacked = map[string][]byte{}
	sm.store.landed = func(before, after Chat) error {
		if sm.faults && !sm.platformRuns && sm.pick(100) == 0 {
			sm.note("  a write not acknowledged by the replicas")
			// Its writer did not count the transitions it made: it heard the write failed.
			sm.uncounted[after.ID] += transitionsOf(after) - transitionsOf(before)
			sm.uncountedHeld[after.ID] += heldStock(after) - heldStock(before)
			sm.uncountedEnded[after.ID] += callsEnded(after) - callsEnded(before)
			sm.uncountedStarted[after.ID] += len(after.Calls) - len(before.Calls)
			return errors.New("replicas did not acknowledge the write")
		}
		return nil
	}
	sm.store.forgot = func(id string) error {
		if sm.faults && !sm.platformRuns && sm.pick(100) == 0 {
			sm.note("  a forget not acknowledged by the replicas")
			return errors.New("replicas did not acknowledge the write")
		}
		return nil
	}
	// The chat store and the pool are one Redis: a write acknowledged in either acknowledges those before it.
	acks := &atomic.Int64{}
	sm.store.acks, sm.store.unackedAt = acks, map[string]int64{}
	sm.numbers = &simNumbers{leased: map[numberpool.Pair]string{}, blocked: map[numberpool.Pair]time.Time{}, last: map[string]string{},
		chats: map[[2]string]string{}, now: clk.now, down: down, acks: acks}
	sm.numbers.landed = func(op string) error {
		if sm.faults && !sm.platformRuns && sm.pick(100) == 0 {
			sm.note("  a number " + op + " not acknowledged by the replicas")
			return errors.New("replicas did not acknowledge the write")
		}
		return nil
	}
	sm.notes = &simNotifier{handed: map[string]bool{}, down: down}
	sm.tw.before = sm.twilioCall
	// Twilio refuses a pair another active conversation binds (50416): the service's own never should;
	// conversations outside the service bind some now and then.
	sm.tw.pairs, sm.tw.external = true, map[[2]string]bool{}
	// Some messages Twilio refuses for good, every time (a recipient who blocked the number): one such
	// copy or notice must never hold up the ones behind it.
	sm.tw.refuses = func(m conversation.Message) bool {
		if !sm.faults || !strings.Contains(m.Attributes, `"chat"`) {
			return false
		}
		// Drawn from what stays the same across runs (a notice's id is random): the chat, the author,
		// the text, the message a copy is of.
		var marker map[string]map[string]string
		_ = json.Unmarshal([]byte(m.Attributes), &marker)
		h := fnv.New32a()
		h.Write([]byte(marker["optin"]["chat"] + "|" + marker["optin"]["resend"] + "|" + m.Author + "|" + m.Body))
		refused := h.Sum32()%25 == 0
		if refused && marker["optin"]["notice"] != "" {
			sm.refusedNotices[marker["optin"]["chat"]+"|"+marker["optin"]["notice"]] = true
		}
		return refused
	}
	sm.tw.lost = func(op string) error {
		// A create that took effect, its answer lost on the way back (a timeout, a reset).
		if sm.faults && !sm.killed && sm.pick(50) == 0 {
			sm.note("  answer lost: " + op)
			return callErr(op, twiliocall.Uncertain, 504, 0)
		}
		return nil
	}
	wa, err := numberpool.New("WhatsApp", simWhatsApp, sm.numbers)
	if err != nil {
		t.Fatal(err)
	}
	sms, err := numberpool.New("SMS", simSMS, sm.numbers)
	if err != nil {
		t.Fatal(err)
	}
	retry := twiliocall.RetryPolicy{InitialInterval: time.Microsecond, MaxInterval: time.Microsecond, MaxAttempts: 2,
		MaxElapsed: time.Minute, CallTimeout: time.Minute}
	for range replicas {
		svc, err := NewService(sm.tw, sm.store, Config{
			WhatsApp: wa, SMS: sms, WebhookURL: "https://optin.example.com/webhooks/conversations",
			InviteContentSid: "HX00000000000000000000000000000001", DefaultTTL: time.Hour,
			StartBudget: time.Minute, Retry: retry, Notifier: sm.notes, Observer: sm.obs, Windows: sm.windows,
			NudgeContentSid: nudgeSid, HoldMax: time.Hour, HoldLimit: 4, ReconcileInterval: time.Minute, ReconcileRate: 1e9,
			Pairs: sm.numbers, Guard: guard.Guard{Mode: sm.guardMode}, AfterEndEvery: time.Hour,
		})
		if err != nil {
			t.Fatal(err)
		}
		svc.now = clk.now
		workNow(svc)
		svc.sleep = func(context.Context, time.Duration) error {
			if sm.killed {
				return errors.New("process killed")
			}
			clk.advance(busyPoll)
			return nil
		}
		sm.replicas = append(sm.replicas, svc)
	}
	return sm
}

// peek reads a chat as the simulation knows it (Twilio, the people, the checks): never a blip.
func (sm *sim) peek(ctx context.Context, id string) (Chat, error) {
	quiet := sm.platformRuns
	sm.platformRuns = true
	defer func() { sm.platformRuns = quiet }()
	return sm.store.Get(ctx, id)
}

// pick returns a number below n, drawn from the run's seeded source.
func (sm *sim) pick(n int) int { return sm.rng.IntN(n) }

// twilioCall runs before every Twilio call: a dead process's calls fail; with faults on, a call may
// be refused for a while (Twilio away), for good, or the process may die right here.
func (sm *sim) twilioCall(op, _ string) error {
	if sm.killed {
		return errors.New("process killed")
	}
	if !sm.faults {
		return nil
	}
	switch sm.pick(100) {
	case 99:
		if sm.depth == 0 {
			// Something else happens to the chats in the middle of this call, on another replica
			// (which this process dying does not take down).
			sm.depth++
			desc := sm.act(context.Background(), sm.replica(), sm.pick(31))
			sm.depth--
			sm.note("  meanwhile, in " + op + ": " + desc)
			sm.killed = false
		}
	case 0, 1:
		sm.killed = true
		sm.note("  killed in " + op)
		return errors.New("process killed")
	case 2, 3, 4:
		return callErr(op, twiliocall.Retryable, 503, 20503)
	case 5:
		// A participant refused for good; a message refused for good is refused every time (refuses).
		if op == "participant" {
			return callErr(op, twiliocall.Permanent, 400, 21610)
		}
	}
	return nil
}

func (sm *sim) note(s string) { sm.log = append(sm.log, s) }

// tail is the last steps of the run, for a failure's report.
func (sm *sim) tail() string { return strings.Join(sm.log[max(len(sm.log)-40, 0):], "\n") }

// replica is a replica chosen for this step.
func (sm *sim) replica() *Service { return sm.replicas[sm.pick(len(sm.replicas))] }

// chatID chooses a chat: often one made already, sometimes a new one.
func (sm *sim) chatID() string {
	ids := slices.Sorted(maps.Keys(sm.requests))
	if len(ids) == 0 || sm.pick(10) == 0 {
		id := fmt.Sprintf("order-%d", len(ids))
		sm.requests[id] = StartRequest{ID: id, Customer: PartyRequest{Address: simCustomers[sm.pick(len(simCustomers))], Name: "Ana"},
			Rider: PartyRequest{Address: simRiders[sm.pick(len(simRiders))], Name: "Bruno"}}
		return id
	}
	return ids[sm.pick(len(ids))]
}

// step takes one step of the run and checks the invariants after it.
func (sm *sim) step() {
	sm.steps++
	desc := sm.act(context.Background(), sm.replica(), sm.pick(31))
	sm.note(fmt.Sprintf("%d: %s", sm.steps, desc))
	sm.killed = false
	sm.check()
}

// act does what op names through svc and describes it.
func (sm *sim) act(ctx context.Context, svc *Service, op int) string {
	desc := ""
	switch {
	case op < 3:
		id := sm.chatID()
		_, _, err := svc.Start(ctx, sm.requests[id])
		desc = fmt.Sprintf("start %s: %v", id, errText(err))
	case op < 4:
		id := sm.chatID()
		_, err := svc.End(ctx, id)
		desc = fmt.Sprintf("end %s: %v", id, errText(err))
	case op < 7:
		id := sm.chatID()
		desc = "answer " + id + ": " + sm.answer(ctx, svc, id)
	case op < 8:
		id := sm.chatID()
		if sid, ok := sm.tw.closeByTwilio(id); ok && sm.pick(2) == 0 {
			reason := []string{"TIMER", "API"}[sm.pick(2)]
			sm.inbox = append(sm.inbox, conversation.Event{Type: conversation.EventStateUpdated, ConversationSid: sid, StateTo: "closed", StateReason: reason})
			desc = "twilio closes " + id
		} else if ok {
			desc = "twilio closes " + id + " (its report is lost)"
		}
	case op < 14:
		desc = sm.write(sm.chatID())
	case op < 19:
		desc = sm.deliver(ctx, svc)
	case op < 20:
		n, err := svc.SweepOutbox(ctx)
		desc = fmt.Sprintf("sweep: %d %v", n, errText(err))
	case op < 21:
		shard := sm.pick(4)
		rep, err := svc.ReconcileShard(ctx, shard, 4)
		desc = fmt.Sprintf("reconcile shard %d/4: %+v %v", shard, rep, errText(err))
	case op < 23:
		desc = sm.platform(ctx)
	case op == 25:
		desc = sm.call(ctx, svc, sm.chatID())
	case op == 26:
		desc = sm.callEnds(ctx, svc)
	case op == 30:
		// A conversation outside the service binds a pair of a person and a business number, or lets
		// one go: the service's next chat on it hears 50416 and takes another number.
		people := append(slices.Clone(simCustomers), simRiders...)
		pair := [2]string{people[sm.pick(len(people))], simWhatsApp[sm.pick(len(simWhatsApp))]}
		sm.tw.mu.Lock()
		sm.tw.external[pair] = !sm.tw.external[pair] && sm.pick(4) == 0 // bound now and then, for a while
		bound := sm.tw.external[pair]
		sm.tw.mu.Unlock()
		desc = fmt.Sprintf("outside the service, %s on %s bound %v", pair[0], pair[1], bound)
	case op == 28:
		desc = sm.writeContact(ctx, svc, sm.chatID())
	case op == 29:
		desc = sm.writeAfterEnd(ctx, svc, sm.chatID())
	case op == 27:
		// What the writes lost had made goes with them, uncounted as it was.
		sm.store.mu.Lock()
		lostVersions := map[string]Chat{}
		for id := range sm.store.unacked {
			if c, ok := sm.store.load(id); ok {
				lostVersions[id] = c
			}
		}
		sm.store.mu.Unlock()
		lost := sm.store.failover()
		poolLost := sm.numbers.failover()
		for _, id := range lost {
			now, _ := sm.peek(ctx, id)
			// The answers after the end whose record was lost: the next message is answered again.
			for _, role := range []string{roleCustomer, roleRider} {
				key, kept := id+"|"+role, now.party(role).AfterEndAt
				sm.afterEnd[key] = slices.DeleteFunc(sm.afterEnd[key], func(at time.Time) bool { return at.After(kept) })
			}
			gone, ok := lostVersions[id]
			if !ok {
				continue // forgotten, and back: no write of it counted anything
			}
			sm.uncounted[id] -= transitionsOf(gone) - transitionsOf(now)
			sm.uncountedHeld[id] -= heldStock(gone) - heldStock(now)
			sm.uncountedEnded[id] -= callsEnded(gone) - callsEnded(now)
			sm.uncountedStarted[id] -= len(gone.Calls) - len(now.Calls)
		}
		desc = fmt.Sprintf("failover: chats set back %v, number leases set back %v", lost, poolLost)
	default:
		d := []time.Duration{time.Second, 10 * time.Second, time.Minute, 2 * time.Hour, 25 * time.Hour}[sm.pick(5)]
		sm.clock.advance(d)
		desc = "time passes " + d.String()
	}
	return desc
}

func errText(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

// answer is the opt-in's outcome for the chat, as the optin flow would tell it: yes (connecting then
// connected), no, or a give-up.
func (sm *sim) answer(ctx context.Context, svc *Service, id string) string {
	c, err := sm.peek(ctx, id)
	if err != nil || c.ConversationSid == "" {
		return "no conversation"
	}
	switch sm.pick(4) {
	case 0, 1:
		if sm.answered[c.ConversationSid] {
			return "answered already"
		}
		yes := sm.tw.write(c.ConversationSid, c.Customer.Address, "yes")
		err := svc.Advance(ctx, c.ConversationSid, conversation.StageConnecting, yes.Sid, nil)
		if err == nil {
			err = svc.Advance(ctx, c.ConversationSid, conversation.StageConnected, yes.Sid, nil)
		}
		if err == nil {
			sm.answered[c.ConversationSid] = true
			delete(sm.answering, c.ConversationSid)
		} else {
			sm.answering[c.ConversationSid] = yes.Sid // the opt-in's queue runs it again
		}
		return "yes: " + errText(err)
	case 2:
		return "no: " + errText(svc.Advance(ctx, c.ConversationSid, conversation.StageDeclined, "", nil))
	default:
		return "gave up: " + errText(svc.Advance(ctx, c.ConversationSid, conversation.StageFailed, "", errors.New("opt-in gave up")))
	}
}

// write has a party of the chat write in its conversation: Twilio then reports the message added and,
// sometimes, that it did not reach the other party (a closed window, or a customer not on WhatsApp).
func (sm *sim) write(id string) string {
	c, err := sm.peek(context.Background(), id)
	if err != nil || c.ConversationSid == "" || !sm.tw.isOpen(c.ConversationSid) {
		return "write " + id + ": no open conversation"
	}
	author := c.Customer.Address
	if sm.pick(2) == 0 {
		author = c.Rider.Address
	}
	var m Message
	if sm.pick(5) == 0 {
		m = sm.tw.writeMedia(c.ConversationSid, author)
	} else {
		m = sm.tw.write(c.ConversationSid, author, fmt.Sprintf("message %d", sm.steps))
	}
	sm.inbox = append(sm.inbox, conversation.Event{Type: conversation.EventMessageAdded, ConversationSid: c.ConversationSid, MessageSid: m.Sid,
		Author: author, DateCreated: m.Created})
	desc := fmt.Sprintf("%s writes %s in %s", author, m.Sid, id)
	switch sm.pick(4) {
	case 0:
		sm.failDelivery(c.ConversationSid, m.Sid, codeWindowClosed)
		desc += ", undelivered (closed window)"
	case 1:
		if inv := c.Steps[stepInvite]; inv != "" && c.Customer.Address == simCustomers[2] {
			sm.failDelivery(c.ConversationSid, inv, codeNotOnWhatsApp)
			desc += ", the invitation undelivered (not on WhatsApp)"
		}
	}
	return desc
}

// call has someone call a business number of the chat: one of its parties on the number they know it
// by (or on the other's), a stranger, a withheld number; sometimes Twilio asks again for a call it
// asked about. A call connects exactly when the chat is connected and the caller is a party on their
// own number, and it rings the other party from the number that party knows the chat by.
func (sm *sim) call(ctx context.Context, svc *Service, id string) string {
	before, err := sm.peek(ctx, id)
	if err != nil || before.Customer.ProxyAddress == "" || before.Rider.ProxyAddress == "" {
		return "call " + id + ": no numbers"
	}
	caller, callee := before.Customer, before.Rider
	if sm.pick(2) == 0 {
		caller, callee = callee, caller
	}
	from, to := E164(caller.Address), E164(caller.ProxyAddress)
	switch sm.pick(8) {
	case 0:
		from = "+15550009999" // a stranger
	case 1:
		from = "anonymous"
	case 2:
		to = E164(callee.ProxyAddress) // on the other's number
	}
	sid := fmt.Sprintf("CA%d", sm.steps)
	if sids := slices.Sorted(maps.Keys(sm.calls)); len(sids) > 0 && sm.pick(6) == 0 {
		// Twilio asks again about a call, within seconds: while its pair is still its chat's.
		if again := sids[sm.pick(len(sids))]; sm.numbers.chats[[2]string{sm.calls[again].to, sm.calls[again].from}] == sm.calls[again].chat {
			sid, from, to = again, sm.calls[again].from, sm.calls[again].to
		}
	}
	// The call belongs to the chat that last leased the number called to the caller (the pair's chat
	// now), whichever chat the caller was picked from.
	var target Chat
	if owner := sm.numbers.chats[[2]string{to, from}]; owner != "" {
		target, _ = sm.peek(ctx, owner)
	}
	var self, peer Party
	for _, pair := range [][2]Party{{target.Customer, target.Rider}, {target.Rider, target.Customer}} {
		if pair[0].ProxyAddress != "" && E164(pair[0].Address) == from && E164(pair[0].ProxyAddress) == to {
			self, peer = pair[0], pair[1]
		}
	}
	connects := self.Address != "" && target.State == StateConnected && target.Ending == nil
	route, err := svc.RouteCall(ctx, CallRequest{Sid: sid, From: from, To: to})
	var refused *CallRefusedError
	asked := sm.calls[sid]
	switch {
	case err == nil && asked != nil:
		// A repeated request: routed as before, recorded once.
		if route.ChatID != asked.chat {
			sm.t.Errorf("call %s asked again was routed through chat %s, first through %s", sid, route.ChatID, asked.chat)
		}
	case err == nil:
		if !connects {
			sm.t.Errorf("call %s from %s to %s connected on chat %s %s (ending %v)", sid, from, to, target.ID, target.State, target.Ending)
		}
		if want := (CallRoute{ChatID: target.ID, Caller: target.roleOf(self.Address), Callee: target.roleOf(peer.Address),
			CallerID: E164(peer.ProxyAddress), Number: E164(peer.Address)}); route != want {
			sm.t.Errorf("call %s routed %+v, want %+v", sid, route, want)
		}
		sm.calls[sid] = &simCall{chat: route.ChatID, from: from, to: to, caller: route.Caller}
	case errors.As(err, &refused):
		if connects && asked == nil {
			sm.t.Errorf("call %s of a party of connected chat %s refused: %s", sid, target.ID, refused.Reason)
		}
	case errors.Is(err, conversation.ErrUnavailable):
		// The store failed: the caller hears an apology, nothing rings.
	default:
		sm.t.Errorf("call %s: %v", sid, err)
	}
	return fmt.Sprintf("call %s on %s from %s: %s", sid, id, from, errText(err))
}

// writeContact has a party type a phone number into the chat: Twilio asks the guard first, then
// publishes the message hidden, or not at all (blocked: its author is owed a notice).
func (sm *sim) writeContact(ctx context.Context, svc *Service, id string) string {
	c, err := sm.peek(ctx, id)
	if err != nil || c.ConversationSid == "" || !sm.tw.isOpen(c.ConversationSid) {
		return "contact " + id + ": no open conversation"
	}
	author := c.Customer.Address
	if sm.pick(2) == 0 {
		author = c.Rider.Address
	}
	body := "call me on +44 7911 123456"
	ans, err := svc.GuardMessage(ctx, GuardRequest{ConversationSid: c.ConversationSid, Author: author, Body: body})
	if err != nil {
		// Twilio publishes a message whose pre-event failed as written: what the handler answers.
		return fmt.Sprintf("contact %s: guard failed (%v), published as written", id, err)
	}
	if ans.ChatID != id || ans.Result.Found[guard.Number] != 1 {
		sm.t.Errorf("contact in %s: the guard answered %+v", id, ans)
	}
	if ans.Result.Blocked {
		return fmt.Sprintf("%s types a number in %s: blocked", author, id)
	}
	if strings.Contains(ans.Result.Body, "7911") {
		sm.t.Errorf("contact in %s published as %q", id, ans.Result.Body)
	}
	m := sm.tw.write(c.ConversationSid, author, ans.Result.Body)
	sm.inbox = append(sm.inbox, conversation.Event{Type: conversation.EventMessageAdded, ConversationSid: c.ConversationSid, MessageSid: m.Sid,
		Author: author, DateCreated: m.Created})
	return fmt.Sprintf("%s types a number in %s: published %q", author, id, ans.Result.Body)
}

// writeAfterEnd has a party write to the business number of their chat (a STOP now and then) after
// it may have ended: answered only when the chat ended, once an hour per party, never a keyword.
func (sm *sim) writeAfterEnd(ctx context.Context, svc *Service, id string) string {
	c, err := sm.peek(ctx, id)
	if err != nil || c.Customer.ProxyAddress == "" {
		return "after the end " + id + ": no numbers"
	}
	p := c.Customer
	if sm.pick(2) == 0 {
		p = c.Rider
	}
	body := []string{"hello?", "are you there", "STOP", "help"}[sm.pick(4)]
	owner := sm.numbers.chats[[2]string{E164(p.ProxyAddress), E164(p.Address)}]
	target, _ := sm.peek(ctx, owner)
	ans, err := svc.MessageAfterEnd(ctx, AfterEndRequest{From: p.Address, To: p.ProxyAddress, Body: body})
	if err != nil {
		return "after the end: " + err.Error() // the handler answers nothing
	}
	if !ans.Reply {
		return fmt.Sprintf("%s writes %q after the end of %s: no answer", p.Address, body, owner)
	}
	role := target.roleOf(p.Address)
	key := owner + "|" + role
	last := sm.afterEnd[key]
	switch {
	case ans.ChatID != owner || ans.Party != role:
		sm.t.Errorf("after the end: answered %+v, want chat %s %s", ans, owner, role)
	case !target.State.Final():
		sm.t.Errorf("after the end: chat %s answered while %s", owner, target.State)
	case IsKeyword(body):
		sm.t.Errorf("after the end: %q answered", body)
	case len(last) > 0 && sm.clock.now().Sub(last[len(last)-1]) < time.Hour:
		sm.t.Errorf("after the end: %s answered again %s after", key, sm.clock.now().Sub(last[len(last)-1]))
	}
	sm.afterEnd[key] = append(last, sm.clock.now())
	return fmt.Sprintf("%s writes %q after the end of %s: answered", p.Address, body, owner)
}

// notices counts the notices in conversation conv, by notice id.
func (sm *sim) notices(conv string) map[string]int {
	sm.tw.mu.Lock()
	defer sm.tw.mu.Unlock()
	out := map[string]int{}
	for _, m := range sm.tw.convs[conv].messages {
		var marker map[string]map[string]string
		if json.Unmarshal([]byte(m.Attributes), &marker) == nil && marker["optin"]["notice"] != "" {
			out[marker["optin"]["notice"]]++
		}
	}
	return out
}

// callEnds reports a connected call's outcome, sometimes again (Twilio retries the callback).
func (sm *sim) callEnds(ctx context.Context, svc *Service) string {
	sids := slices.Sorted(maps.Keys(sm.calls))
	if len(sids) == 0 {
		return "no call to end"
	}
	sid := sids[sm.pick(len(sids))]
	call := sm.calls[sid]
	status := []string{"completed", "busy", "no-answer", "failed"}[sm.pick(4)]
	err := svc.CallEnded(ctx, CallOutcome{ChatID: call.chat, Sid: sid, Caller: call.caller, Status: status, Duration: time.Duration(sm.pick(600)) * time.Second})
	if err == nil {
		call.ended = true
	}
	return fmt.Sprintf("call %s ends %s: %s", sid, status, errText(err))
}

// transitionsOf counts the state changes in c's history (not the moves to another channel).
func transitionsOf(c Chat) int {
	n := 0
	for _, h := range c.History {
		if h.Channel == "" {
			n++
		}
	}
	return n
}

// callsEnded counts the calls of c whose end is recorded.
func callsEnded(c Chat) int {
	n := 0
	for _, call := range c.Calls {
		if call.Status != "" {
			n++
		}
	}
	return n
}

// heldStock counts the held messages of c that count as held: not early, or settling.
func heldStock(c Chat) int {
	n := len(c.Settling)
	for _, p := range []Party{c.Customer, c.Rider} {
		for _, h := range p.Held {
			if !h.Early {
				n++
			}
		}
	}
	return n
}

func (sm *sim) failDelivery(conv, msid string, code int) {
	sm.tw.failDelivery(conv, msid, code)
	sm.inbox = append(sm.inbox, conversation.Event{Type: conversation.EventDeliveryUpdated, ConversationSid: conv, MessageSid: msid,
		Status: "failed", ErrorCode: code})
}

// deliver hands one of Twilio's webhooks to a replica, out of order: it may be lost, delivered, or
// delivered and kept to be delivered again (a retry, a replay).
func (sm *sim) deliver(ctx context.Context, svc *Service) string {
	if len(sm.inbox) == 0 {
		return "no webhook to deliver"
	}
	i := sm.pick(len(sm.inbox))
	ev := sm.inbox[i]
	fate := sm.pick(10)
	if fate != 9 { // 9: kept, delivered again later
		sm.inbox = slices.Delete(sm.inbox, i, i+1)
	}
	if fate == 0 && sm.faults {
		return "webhook lost: " + ev.Type
	}
	var err error
	switch ev.Type {
	case conversation.EventMessageAdded:
		_, _, err = svc.MessageAdded(ctx, ev)
	case conversation.EventDeliveryUpdated:
		_, err = svc.DeliveryUpdated(ctx, ev)
	case conversation.EventStateUpdated:
		_, err = svc.StateUpdated(ctx, ev)
	}
	return fmt.Sprintf("webhook %s %s: %s", ev.Type, ev.MessageSid, errText(err))
}

// platform delivers the events handed over, as the callback worker does: each chat's in order, the
// earliest first, each removed from the chat once delivered.
func (sm *sim) platform(ctx context.Context) string {
	sm.platformRuns = true
	defer func() { sm.platformRuns = false }()
	sm.notes.mu.Lock()
	handed := slices.Sorted(maps.Keys(sm.notes.handed))
	sm.notes.mu.Unlock()
	n := 0
	for _, key := range handed {
		chatID, eventID, _ := strings.Cut(key, "|")
		c, err := sm.peek(ctx, chatID)
		if err != nil {
			continue
		}
		i := slices.IndexFunc(c.Pending, func(e Event) bool { return e.ID == eventID })
		if i < 0 {
			continue
		}
		for _, ev := range c.Pending[:i+1] {
			sm.delivered[chatID] = append(sm.delivered[chatID], ev.Type)
			n++
			if _, err := sm.store.Update(ctx, chatID, func(c *Chat) error {
				c.Pending = slices.DeleteFunc(c.Pending, func(e Event) bool { return e.ID == ev.ID })
				return nil
			}); err != nil {
				sm.t.Errorf("removing a delivered event: %v", err)
			}
		}
	}
	return fmt.Sprintf("platform got %d events", n)
}

// check verifies what must hold after every step.
func (sm *sim) check() {
	ctx := context.Background()
	// The pool never leases a pair one of the service's own active conversations binds.
	sm.tw.mu.Lock()
	conflicts := slices.Clone(sm.tw.conflicts)
	sm.tw.mu.Unlock()
	for _, c := range conflicts {
		sm.t.Errorf("a pair leased while bound: %s", c)
	}
	ids := slices.Sorted(maps.Keys(sm.requests))
	copies := sm.copies()
	for orig, n := range copies {
		if n > 1 {
			sm.t.Errorf("held message %s sent again %d times", orig, n)
		}
	}
	for _, id := range ids {
		c, err := sm.peek(ctx, id)
		if errors.Is(err, ErrNotFound) {
			if held := sm.numbers.held(id); len(held) > 0 && !sm.startRunning(id) {
				sm.t.Errorf("chat %s is forgotten but holds numbers %v", id, held)
			}
			continue
		}
		if err != nil {
			sm.t.Fatal(err)
		}
		// A final state never changes, and nothing follows it in the history.
		if f, ok := sm.finals[id]; ok && c.State != f {
			sm.t.Errorf("chat %s was %s and is now %s", id, f, c.State)
		}
		if c.State.Final() && !sm.store.lost(id) {
			sm.finals[id] = c.State // a final state no replica acknowledged may yet be lost
		}
		for i, h := range c.History {
			if h.State.Final() && i != len(c.History)-1 {
				sm.t.Errorf("chat %s moved after a final state: %s", id, historyOf(c))
			}
		}
		// Numbers leased belong to open chats, or to final ones whose release is still to do; an open
		// chat past its numbers step holds its numbers.
		held := sm.numbers.held(id)
		if c.State.Final() && !c.Release && len(held) > 0 {
			sm.t.Errorf("chat %s is %s, its release done, and holds %v", id, c.State, held)
		}
		if !c.State.Final() && c.Steps[stepNumbers] != "" {
			want := []numberpool.Pair{{Address: c.Customer.Address, Number: c.Customer.ProxyAddress}, {Address: c.Rider.Address, Number: c.Rider.ProxyAddress}}
			if f := c.Fallback; f != nil && f.Removed {
				// Half way to SMS: the WhatsApp pair is let go once its participant is removed.
				want[0] = numberpool.Pair{Address: strings.TrimPrefix(f.From, "whatsapp:"), Number: f.Number}
			}
			for _, p := range want {
				if p.Number != "" && !slices.Contains(held, p) { // "": the party holds none, recorded so
					sm.t.Errorf("open chat %s lost the lease of %s on %s (holds %v)", id, p.Address, p.Number, held)
				}
			}
			// And nothing more: a party's pair, one each, but for an SMS number leased for a move
			// under way (before its participant is swapped), or taken by a replace not yet recorded.
			if f := c.Fallback; f != nil && f.Number != "" && !f.Removed {
				want = append(want, numberpool.Pair{Address: strings.TrimPrefix(f.From, "whatsapp:"), Number: f.Number})
			}
			if f := c.Fallback; f != nil && f.Number == "" {
				// An SMS number the move leased, its record lost in a failover: freed by its next run.
				for _, p := range held {
					if p.Address == strings.TrimPrefix(f.From, "whatsapp:") && slices.Contains(simSMS, p.Number) {
						want = append(want, p)
					}
				}
			}
			if f := c.Fallback; f != nil && f.Removed && !f.Added {
				// The WhatsApp pair, freed by the move's next run when the run that recorded the removal
				// did not get to it.
				want = append(want, numberpool.Pair{Address: f.From, Number: c.Customer.ProxyAddress})
			}
			for _, p := range held {
				// A party recorded without a number may hold one leased unrecorded: its start's next run
				// frees it.
				bare := p.Number == "" || (p.Address == c.Customer.Address && c.Customer.ProxyAddress == "") ||
					(p.Address == c.Rider.Address && c.Rider.ProxyAddress == "")
				if !slices.Contains(want, p) && !bare && !sm.startRunning(id) {
					sm.t.Errorf("open chat %s holds %s on %s beyond its parties' pairs %v", id, p.Address, p.Number, want)
				}
			}
		}
		if c.ConversationSid != "" {
			for n, k := range sm.notices(c.ConversationSid) {
				if k > 1 {
					sm.t.Errorf("chat %s sent notice %s %d times", id, n, k)
				}
			}
		}
		if c.State.Final() && (len(c.Customer.Held)+len(c.Rider.Held) > 0 || c.Fallback != nil || c.Ending != nil || len(c.Notices) > 0) {
			sm.t.Errorf("final chat %s keeps held messages, a move or an ending", id)
		}
	}
}

// startRunning reports whether a start of the chat may still be under way (its lease held): a killed
// start leaves its leases until they lapse.
func (sm *sim) startRunning(id string) bool {
	sm.store.mu.Lock()
	defer sm.store.mu.Unlock()
	l, ok := sm.store.locks[id]
	return ok && sm.clock.now().Before(l.until)
}

// copies counts the copies of each held message in every conversation, by conversation and original.
func (sm *sim) copies() map[string]int {
	sm.tw.mu.Lock()
	defer sm.tw.mu.Unlock()
	out := map[string]int{}
	for _, c := range sm.tw.convs {
		for _, m := range c.messages {
			var marker map[string]map[string]string
			if json.Unmarshal([]byte(m.Attributes), &marker) == nil && marker["optin"]["resend"] != "" && !strings.Contains(marker["optin"]["resend"], "/") {
				out[c.sid+"/"+marker["optin"]["resend"]]++ // SIDs of the fake repeat across conversations
			}
		}
	}
	return out
}

// settle turns the faults off, lets every lease lapse, delivers what Twilio still owes, and runs the
// upkeep until nothing changes; then what must hold once everything settled is checked.
func (sm *sim) settle() {
	ctx := context.Background()
	sm.faults = false
	svc := sm.replicas[0]
	for round := range 6 {
		// The opt-ins cut off run again until they finish (once their chat's start has).
		for _, conv := range slices.Sorted(maps.Keys(sm.answering)) {
			err := svc.Advance(ctx, conv, conversation.StageConnecting, sm.answering[conv], nil)
			if err == nil {
				err = svc.Advance(ctx, conv, conversation.StageConnected, sm.answering[conv], nil)
			}
			if err == nil {
				delete(sm.answering, conv)
			} else if round == 5 {
				sm.t.Errorf("settling: the opt-in of %s: %v", conv, err)
			}
		}
		sm.clock.advance(2 * time.Minute)
		for len(sm.inbox) > 0 {
			sm.deliver(ctx, svc)
		}
		if _, err := svc.Reconcile(ctx); err != nil {
			sm.t.Errorf("settling: reconcile: %v", err)
		}
		if _, err := svc.SweepOutbox(ctx); err != nil {
			sm.t.Errorf("settling: sweep: %v", err)
		}
		sm.platform(ctx)
		sm.note(fmt.Sprintf("settle round %d", round))
		sm.check()
	}
	// Every call connected ends, and Twilio reports it (until it is heard).
	for _, sid := range slices.Sorted(maps.Keys(sm.calls)) {
		if call := sm.calls[sid]; !call.ended {
			if err := svc.CallEnded(ctx, CallOutcome{ChatID: call.chat, Sid: sid, Caller: call.caller, Status: "completed", Duration: time.Minute}); err != nil {
				sm.t.Errorf("settling: the end of call %s: %v", sid, err)
			}
			call.ended = true
		}
	}
	sm.platform(ctx)
	held, resent, _, dropped := sm.obs.counts()
	stillHeld := 0
	for _, id := range slices.Sorted(maps.Keys(sm.requests)) {
		c, err := sm.peek(ctx, id)
		if err != nil {
			if held := sm.numbers.held(id); len(held) > 0 {
				sm.t.Errorf("settled: forgotten chat %s holds numbers %v", id, held)
			}
			continue
		}
		for _, p := range []Party{c.Customer, c.Rider} {
			for _, h := range p.Held {
				if !h.Early {
					stillHeld++
				}
			}
		}
		if c.State.Final() && len(sm.numbers.held(id)) > 0 {
			sm.t.Errorf("settled: final chat %s holds numbers %v", id, sm.numbers.held(id))
		}
		if c.State == StateStarting || c.State == StateConnecting {
			sm.t.Errorf("settled: chat %s still %s", id, c.State)
		}
		if len(c.Pending) > 0 {
			sm.t.Errorf("settled: chat %s has events never delivered: %s", id, eventTypesOf(c))
		}
		// Every call connected was told once as started and once as ended when it ended, the start first;
		// the calls are the chat's record.
		var got []string
		started, ended, afterEnd := 0, 0, 0
		for _, typ := range sm.delivered[id] {
			switch typ {
			case EventCallStarted:
				started++
			case EventCallEnded:
				ended++
				if ended > started {
					sm.t.Errorf("settled: chat %s told a call's end before its start: %v", id, sm.delivered[id])
				}
			case EventMessageAfterEnd:
				afterEnd++
			default:
				got = append(got, typ)
			}
		}
		routed, finished := 0, 0
		for sid, call := range sm.calls {
			if call.chat != id {
				continue
			}
			routed++
			i := slices.IndexFunc(c.Calls, func(x Call) bool { return x.Sid == sid })
			switch {
			case i < 0:
				sm.t.Errorf("settled: chat %s lost call %s", id, sid)
			case call.ended && c.Calls[i].Status == "":
				sm.t.Errorf("settled: chat %s did not record the end of call %s", id, sid)
			case c.Calls[i].Status != "":
				finished++
			}
		}
		if started != routed || ended != finished || len(c.Calls) != routed {
			sm.t.Errorf("settled: chat %s told %d calls started and %d ended; %d connected, %d ended, %d recorded", id, started, ended, routed, finished, len(c.Calls))
		}
		// Every answer after the end was told once; every message blocked in a chat still open got its
		// author a notice, once.
		answers := len(sm.afterEnd[id+"|"+roleCustomer]) + len(sm.afterEnd[id+"|"+roleRider])
		if afterEnd != answers {
			sm.t.Errorf("settled: chat %s told %d messages after the end, answered %d", id, afterEnd, answers)
		}
		if c.ConversationSid != "" && !c.State.Final() && c.GuardedCount <= maxGuarded {
			blocks := 0
			for _, g := range c.Guarded {
				if g.Action == string(guard.Block) {
					blocks++
				}
			}
			refused := 0
			for key := range sm.refusedNotices {
				if strings.HasPrefix(key, id+"|") {
					refused++
				}
			}
			if n := len(sm.notices(c.ConversationSid)); n+refused+c.NoticesDropped != blocks || len(c.Notices) > 0 {
				sm.t.Errorf("settled: chat %s blocked %d messages, told %d, %d refused by Twilio, %d dropped for newer ones (%d notices left)", id, blocks, n, refused, c.NoticesDropped, len(c.Notices))
			}
		}
		// Every transition the platform hears of was delivered, in order.
		var want []string
		for _, h := range c.History {
			switch {
			case h.Channel != "":
				want = append(want, EventChannelChanged)
			case eventTypes[h.State] != "":
				want = append(want, eventTypes[h.State])
			}
		}
		if !slices.Equal(got, want) {
			sm.t.Errorf("settled: chat %s delivered %v, want %v (history %s)", id, got, want, historyOf(c))
		}
	}
	// The transitions counted are the transitions recorded.
	moves := 0
	for _, id := range slices.Sorted(maps.Keys(sm.requests)) {
		if c, err := sm.peek(ctx, id); err == nil {
			for _, h := range c.History[1:] {
				if h.Channel == "" {
					moves++
				}
			}
		}
	}
	uncounted := 0
	for _, n := range sm.uncounted {
		uncounted += n
	}
	if sm.obs.transitions+uncounted != moves {
		sm.t.Errorf("settled: %d transitions counted and %d made by writes heard failed, %d recorded", sm.obs.transitions, uncounted, moves)
	}
	// The calls counted are the calls recorded.
	routed, finished := 0, 0
	for _, call := range sm.calls {
		routed++
		if call.ended {
			finished++
		}
	}
	for _, n := range sm.uncountedEnded {
		finished -= n
	}
	for _, n := range sm.uncountedStarted {
		routed -= n
	}
	if sm.obs.callsStarted != routed || sm.obs.callsEnded != finished {
		sm.t.Errorf("settled: %d calls counted started and %d ended; %d connected, %d ended", sm.obs.callsStarted, sm.obs.callsEnded, routed, finished)
	}
	total := 0
	for _, n := range dropped {
		total += n
	}
	for _, n := range sm.uncountedHeld {
		held += n
	}
	if held != resent+total+stillHeld {
		sm.t.Errorf("settled: %d held, %d sent again, %d dropped %v, %d still held: each held message is sent once or dropped once",
			held, resent, total, dropped, stillHeld)
	}
}
