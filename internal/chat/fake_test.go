package chat

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/optinkit/optin/internal/conversation"
	"github.com/optinkit/optin/internal/twiliocall"
)

// fakeTwilio is the Conversations a chat needs, holding what Twilio would: each conversation's state
// and participants. before, when set, runs at the start of every call (op names it): a test injects a
// failure there, or does something else to the chat in the middle of a start.
type fakeTwilio struct {
	mu     sync.Mutex
	convs  map[string]*fakeConv // by SID
	byName map[string]string
	calls  []string
	// fetched holds when each conversation read came.
	fetched []time.Time
	before  func(op, conv string) error
	// lost, when set, is asked after a create took effect: an error is what the caller gets instead
	// of the answer (a timeout after Twilio acted).
	lost func(op string) error
	// media are the media uploaded, by SID; attached those attached to a message (once only).
	media    map[string]Media
	attached map[string]bool
	// pairs, when set, makes AddParticipant refuse a pair (address, proxy address) that another active
	// conversation binds (50416), as Twilio does: external are bindings of conversations the service did
	// not make, conflicts counts refusals caused by the service's own conversations.
	pairs     bool
	external  map[[2]string]bool
	conflicts []string
	// refuses, when set, says which messages Twilio refuses for good, every time they are tried.
	refuses func(m conversation.Message) bool
}

type fakeConv struct {
	sid, name    string
	closed       bool
	participants []string
	// bound are the participants' proxy addresses, by address.
	bound    map[string]string
	webhooks []conversation.Webhook
	messages []fakeMsg
}

// fakeMsg is a message as the fake keeps it: what FetchMessage reads, the template it was sent as, and
// the error codes of its failed deliveries.
type fakeMsg struct {
	Message
	ContentSid, ContentVariables string
	failures                     []int
}

func newFakeTwilio() *fakeTwilio {
	return &fakeTwilio{convs: map[string]*fakeConv{}, byName: map[string]string{}, media: map[string]Media{}, attached: map[string]bool{}}
}

// enter records the call and runs before outside the lock.
func (f *fakeTwilio) enter(op, conv string) error {
	f.mu.Lock()
	f.calls = append(f.calls, op)
	before := f.before
	f.mu.Unlock()
	if before != nil {
		return before(op, conv)
	}
	return nil
}

func callErr(op string, kind twiliocall.FailureKind, status, code int) error {
	return &twiliocall.CallError{Op: op, Kind: kind, Status: status, Code: code, Err: fmt.Errorf("twilio %d", code)}
}

func (f *fakeTwilio) CreateConversation(_ context.Context, c NewConversation) (string, error) {
	if err := f.enter("create", ""); err != nil {
		return "", err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, taken := f.byName[c.UniqueName]; taken {
		return "", callErr("create conversation", twiliocall.Permanent, 409, codeUniqueNameTaken)
	}
	sid := fmt.Sprintf("CH%032x", len(f.convs)+1)
	f.convs[sid] = &fakeConv{sid: sid, name: c.UniqueName}
	f.byName[c.UniqueName] = sid
	return sid, f.answerLost("create")
}

// conv returns the conversation named by SID or unique name. Callers hold f.mu.
func (f *fakeTwilio) conv(key string) (*fakeConv, error) {
	if sid, ok := f.byName[key]; ok {
		key = sid
	}
	c, ok := f.convs[key]
	if !ok {
		return nil, callErr("conversation", twiliocall.Permanent, 404, twiliocall.CodeNotFound)
	}
	return c, nil
}

// open returns the conversation unless it is closed (50377). Callers hold f.mu.
func (f *fakeTwilio) open(key string) (*fakeConv, error) {
	c, err := f.conv(key)
	if err == nil && c.closed {
		return nil, callErr("conversation", twiliocall.Permanent, 400, twiliocall.CodeClosed)
	}
	return c, err
}

func (f *fakeTwilio) FindConversation(_ context.Context, key string) (string, bool, error) {
	if err := f.enter("fetch", key); err != nil {
		return "", false, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fetched = append(f.fetched, time.Now())
	c, err := f.conv(key)
	if err != nil {
		return "", false, err
	}
	return c.sid, c.closed, nil
}

func (f *fakeTwilio) AddParticipant(_ context.Context, sid, address, proxy string) error {
	if err := f.enter("participant", sid); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.open(sid)
	if err != nil {
		return err
	}
	if slices.Contains(c.participants, address) {
		return callErr("participant", twiliocall.Permanent, 409, codeAlreadyPresent)
	}
	if f.pairs {
		if f.external[[2]string{address, proxy}] {
			return callErr("participant", twiliocall.Permanent, 409, codePairInUse)
		}
		for _, other := range f.convs {
			if other != c && !other.closed && other.bound[address] == proxy {
				f.conflicts = append(f.conflicts, fmt.Sprintf("%s on %s, bound in %s, added to %s", address, proxy, other.name, c.name))
				return callErr("participant", twiliocall.Permanent, 409, codePairInUse)
			}
		}
	}
	c.participants = append(c.participants, address)
	if c.bound == nil {
		c.bound = map[string]string{}
	}
	c.bound[address] = proxy
	return f.answerLost("participant")
}

func (f *fakeTwilio) CreateMessage(_ context.Context, sid string, m conversation.Message) (string, error) {
	if err := f.enter("message", sid); err != nil {
		return "", err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.open(sid)
	if err != nil {
		return "", err
	}
	if f.refuses != nil && f.refuses(m) {
		return "", callErr("message", twiliocall.Permanent, 400, 21610)
	}
	var media []Media
	switch md, known := f.media[m.MediaSid]; {
	case m.MediaSid == "":
	case !known:
		return "", callErr("create message", twiliocall.Permanent, 400, 50510)
	case f.attached[m.MediaSid]:
		return "", callErr("create message", twiliocall.Permanent, 400, 50508) // media already sent
	default:
		f.attached[m.MediaSid] = true
		media = []Media{md}
	}
	if m.Body == "" && m.ContentSid == "" && len(media) == 0 {
		return "", callErr("create message", twiliocall.Permanent, 400, 50006) // body, media or content required
	}
	msid := c.add(m)
	c.messages[len(c.messages)-1].Media = media
	return msid, f.answerLost("message")
}

func (f *fakeTwilio) CopyMedia(_ context.Context, sid string, m Media) (string, error) {
	if err := f.enter("copy_media", sid); err != nil {
		return "", err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.media[m.Sid]; !ok {
		return "", callErr("copy media", twiliocall.Permanent, 404, twiliocall.CodeNotFound)
	}
	m.Sid = fmt.Sprintf("ME%032x", len(f.media)+1)
	f.media[m.Sid] = m
	return m.Sid, nil
}

// writeMedia adds a person's message with an attachment (a photo of the door), and no body.
func (f *fakeTwilio) writeMedia(sid, author string) Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.convs[sid]
	md := Media{Sid: fmt.Sprintf("ME%032x", len(f.media)+1), ContentType: "image/jpeg", Filename: "door.jpg", Size: 48213}
	f.media[md.Sid], f.attached[md.Sid] = md, true
	c.add(conversation.Message{Author: author, Attributes: "{}"})
	c.messages[len(c.messages)-1].Media = []Media{md}
	return c.messages[len(c.messages)-1].Message
}

// add appends m to the conversation and returns its SID. Callers hold f.mu.
func (c *fakeConv) add(m conversation.Message) string {
	msid := fmt.Sprintf("IM%032x", len(c.messages)+1)
	c.messages = append(c.messages, fakeMsg{Message: Message{Sid: msid, Author: m.Author, Body: m.Body, Attributes: m.Attributes,
		Index: len(c.messages), Created: fakeEpoch.Add(time.Duration(len(c.messages)) * time.Second)}, ContentSid: m.ContentSid, ContentVariables: m.ContentVariables})
	return msid
}

// answerLost is the error the caller gets after its create took effect, when lost says so. Callers
// hold f.mu.
func (f *fakeTwilio) answerLost(op string) error {
	if f.lost != nil {
		return f.lost(op)
	}
	return nil
}

// fakeEpoch is Twilio's clock at a conversation's first message; each next message is a second later.
var fakeEpoch = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// isOpen reports whether the conversation exists and is not closed.
func (f *fakeTwilio) isOpen(sid string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.convs[sid]
	return ok && !c.closed
}

// write adds what a person wrote to the conversation, as Twilio does with an inbound message.
func (f *fakeTwilio) write(sid, author, body string) Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.convs[sid]
	c.add(conversation.Message{Author: author, Body: body, Attributes: "{}"})
	return c.messages[len(c.messages)-1].Message
}

// sent lists the messages created in the conversation from index from on.
func (f *fakeTwilio) sent(sid string, from int) []fakeMsg {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.convs[sid].messages[from:])
}

func (f *fakeTwilio) RemoveParticipant(_ context.Context, sid, address string) error {
	if err := f.enter("remove_participant", sid); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.open(sid)
	if err != nil {
		return err
	}
	c.participants = slices.DeleteFunc(c.participants, func(a string) bool { return a == address })
	delete(c.bound, address)
	return nil
}

// failDelivery makes a delivery of message msid fail with code, as WhatsApp would report it.
func (f *fakeTwilio) failDelivery(sid, msid string, code int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.convs[sid].messages {
		if m := &f.convs[sid].messages[i]; m.Sid == msid {
			m.failures = append(m.failures, code)
		}
	}
}

func (f *fakeTwilio) RecentDeliveries(_ context.Context, sid string, limit int) ([]Delivery, error) {
	if err := f.enter("list_deliveries", sid); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.conv(sid)
	if err != nil {
		return nil, err
	}
	var out []Delivery
	for _, m := range slices.Backward(c.messages[max(len(c.messages)-limit, 0):]) {
		out = append(out, Delivery{Sid: m.Sid, Index: m.Index, Author: m.Author, Created: m.Created, Failed: len(m.failures) > 0,
			Ours: strings.Contains(m.Attributes, `"optin"`)})
	}
	return out, nil
}

func (f *fakeTwilio) FailureCodes(_ context.Context, sid, msid string) ([]int, error) {
	if err := f.enter("receipts", sid); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.conv(sid)
	if err != nil {
		return nil, err
	}
	for _, m := range c.messages {
		if m.Sid == msid {
			return slices.Clone(m.failures), nil
		}
	}
	return nil, callErr("receipts", twiliocall.Permanent, 404, twiliocall.CodeNotFound)
}

func (f *fakeTwilio) FetchMessage(_ context.Context, sid, msid string) (Message, error) {
	if err := f.enter("fetch_message", sid); err != nil {
		return Message{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.conv(sid)
	if err != nil {
		return Message{}, err
	}
	for _, m := range c.messages {
		if m.Sid == msid {
			m.Media = slices.Clone(m.Media)
			return m.Message, nil
		}
	}
	return Message{}, callErr("fetch message", twiliocall.Permanent, 404, twiliocall.CodeNotFound)
}

func (f *fakeTwilio) RecentMessages(_ context.Context, sid string, limit int) ([]conversation.PostedMessage, error) {
	if err := f.enter("recent", sid); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.conv(sid)
	if err != nil {
		return nil, err
	}
	var out []conversation.PostedMessage
	for _, m := range slices.Backward(c.messages[max(len(c.messages)-limit, 0):]) {
		out = append(out, conversation.PostedMessage{Sid: m.Sid, Attributes: m.Attributes})
	}
	return out, nil
}

func (f *fakeTwilio) ScopedWebhooks(_ context.Context, sid string) ([]conversation.Webhook, error) {
	if err := f.enter("webhooks", sid); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.conv(sid)
	if err != nil {
		return nil, err
	}
	return slices.Clone(c.webhooks), nil
}

func (f *fakeTwilio) CreateWebhook(_ context.Context, sid string, h conversation.Webhook) (string, error) {
	if err := f.enter("webhook", sid); err != nil {
		return "", err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.open(sid)
	if err != nil {
		return "", err
	}
	h.Sid = fmt.Sprintf("WH%032x", len(c.webhooks)+1)
	c.webhooks = append(c.webhooks, h)
	return h.Sid, f.answerLost("webhook")
}

func (f *fakeTwilio) CloseConversation(_ context.Context, sid string) error {
	if err := f.enter("close", sid); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.open(sid)
	if err != nil {
		return err
	}
	c.closed = true
	return nil
}

// closeByTwilio closes the chat's conversation as Twilio's timer would, and says whether it was open.
func (f *fakeTwilio) closeByTwilio(name string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.conv(name)
	if err != nil || c.closed {
		return "", false
	}
	c.closed = true
	return c.sid, true
}

// openWithParticipants lists the unique names of conversations that are active with participants.
func (f *fakeTwilio) openWithParticipants() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.convs {
		if !c.closed && len(c.participants) > 0 {
			out = append(out, c.name)
		}
	}
	return out
}

func (f *fakeTwilio) opCount(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if c == op {
			n++
		}
	}
	return n
}

// fakePool leases one number per address; a test reads what is still leased.
type fakePool struct {
	mu      sync.Mutex
	number  string
	leases  map[string][]string
	renewed []string
	// failRelease, when set, refuses releases.
	failRelease error
}

func newFakePool() *fakePool {
	return &fakePool{number: "whatsapp:+15550100000", leases: map[string][]string{}}
}

func (p *fakePool) Lease(_ context.Context, chatID string, addresses []string) ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := slices.Repeat([]string{p.number}, len(addresses))
	p.leases[chatID] = append(p.leases[chatID], addresses...)
	return out, nil
}

func (p *fakePool) Replace(context.Context, string, string, string) (string, error) {
	return "", fmt.Errorf("no replacement in this fake")
}

func (p *fakePool) Release(_ context.Context, chatID string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failRelease != nil {
		return p.failRelease
	}
	delete(p.leases, chatID)
	return nil
}

func (p *fakePool) ReleaseAddress(_ context.Context, chatID, address string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.leases[chatID] = slices.DeleteFunc(p.leases[chatID], func(a string) bool { return a == address })
	if len(p.leases[chatID]) == 0 {
		delete(p.leases, chatID)
	}
	return nil
}

// leasedTo reports whether the pool holds a lease of address for the chat.
func (p *fakePool) leasedTo(chatID, address string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Contains(p.leases[chatID], address)
}

func (p *fakePool) Contains(number string) bool { return number == p.number }

func (p *fakePool) Renew(_ context.Context, chatID string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.renewed = append(p.renewed, chatID)
	return nil
}

func (p *fakePool) held(chatID string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.leases[chatID]) > 0
}

// fakeStore is a Store in a map; fail, when set, makes Update fail for the chat as told.
type fakeStore struct {
	mu    sync.Mutex
	chats map[string][]byte // JSON, so that nothing aliases
	locks map[string]fakeLease
	seq   int64
	now   func() time.Time
	// failUpdate, when set, sees each update (the chat before and after its change) and may refuse it.
	failUpdate func(before, after Chat) error
	// down, when set, is asked before every call: an error fails the call (a process that died).
	down func() error
	// landed, when set, sees each update after it was written and may fail the call all the same (a
	// write whose replicas did not acknowledge it).
	landed func(before, after Chat) error
	// unacked, when not nil, keeps for each chat whose last write landed refuses (its replicas did not
	// acknowledge it) the version before that write: a failover loses the write. A write acknowledged
	// afterwards, of any chat, acknowledges it too (replicas apply writes in order).
	unacked map[string][]byte
	// acks, when set, is shared with the other stores of the same Redis (the number pool): it counts
	// the writes acknowledged, of any of them, and unackedAt the count each unacked version was kept
	// at. A version kept before the last acknowledgement anywhere is held by the replicas.
	acks      *atomic.Int64
	unackedAt map[string]int64
	// forgot, when set, sees each chat deleted and may fail the call all the same (its replicas did not
	// acknowledge it): a failover brings the chat back.
	forgot func(id string) error
}

// lost reports whether a failover now would set chat id back. Callers hold s.mu or run alone.
func (s *fakeStore) lost(id string) bool {
	_, ok := s.unacked[id]
	return ok && (s.acks == nil || s.unackedAt[id] == s.acks.Load())
}

// failover loses the writes no replica acknowledged, as a replica promoted after them would; it
// returns the chats it set back.
func (s *fakeStore) failover() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for _, id := range slices.Sorted(maps.Keys(s.unacked)) {
		if s.lost(id) {
			s.chats[id] = s.unacked[id]
			ids = append(ids, id)
		}
	}
	clear(s.unacked)
	return ids
}

// isDown reports the store unreachable for the caller. Callers hold s.mu.
func (s *fakeStore) isDown() error {
	if s.down != nil {
		return s.down()
	}
	return nil
}

type fakeLease struct {
	owner string
	until time.Time
}

func newFakeStore(now func() time.Time) *fakeStore {
	return &fakeStore{chats: map[string][]byte{}, locks: map[string]fakeLease{}, now: now}
}

func (s *fakeStore) load(id string) (Chat, bool) {
	raw, ok := s.chats[id]
	if !ok {
		return Chat{}, false
	}
	var c Chat
	if err := json.Unmarshal(raw, &c); err != nil {
		panic(err)
	}
	if c.Steps == nil {
		c.Steps = map[string]string{}
	}
	return c, true
}

func (s *fakeStore) save(c Chat) {
	raw, err := json.Marshal(c)
	if err != nil {
		panic(err)
	}
	s.chats[c.ID] = raw
}

func (s *fakeStore) Create(_ context.Context, c Chat) (Chat, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.isDown(); err != nil {
		return Chat{}, false, err
	}
	if existing, ok := s.load(c.ID); ok {
		return existing, false, nil
	}
	s.seq++
	c.Seq = s.seq
	s.save(c)
	s.acknowledged()
	got, _ := s.load(c.ID)
	return got, true, nil
}

// acknowledged records a write the replicas took: every write before it, of any chat or the pool, is
// theirs too. Callers hold s.mu.
func (s *fakeStore) acknowledged() {
	clear(s.unacked)
	if s.acks != nil {
		s.acks.Add(1)
	}
}

func (s *fakeStore) Get(_ context.Context, id string) (Chat, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.isDown(); err != nil {
		return Chat{}, err
	}
	c, ok := s.load(id)
	if !ok {
		return Chat{}, fmt.Errorf("chat %s: %w", id, ErrNotFound)
	}
	return c, nil
}

func (s *fakeStore) ByConversation(ctx context.Context, sid string) (Chat, error) {
	s.mu.Lock()
	if err := s.isDown(); err != nil {
		s.mu.Unlock()
		return Chat{}, err
	}
	var id string
	for k := range s.chats {
		if c, _ := s.load(k); c.ConversationSid == sid {
			id = k
		}
	}
	s.mu.Unlock()
	if id == "" {
		return Chat{}, fmt.Errorf("chat of %s: %w", sid, ErrNotFound)
	}
	return s.Get(ctx, id)
}

func (s *fakeStore) Update(_ context.Context, id string, change func(*Chat) error) (Chat, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.isDown(); err != nil {
		return Chat{}, err
	}
	c, ok := s.load(id)
	if !ok {
		return Chat{}, fmt.Errorf("chat %s: %w", id, ErrNotFound)
	}
	before, _ := s.load(id)
	if err := change(&c); err != nil {
		return Chat{}, err
	}
	if s.failUpdate != nil {
		if err := s.failUpdate(before, c); err != nil {
			return Chat{}, err
		}
	}
	previous := s.chats[id]
	s.save(c)
	got, _ := s.load(id)
	if s.landed != nil {
		if err := s.landed(before, got); err != nil {
			if s.unacked != nil && !s.lost(id) {
				s.unacked[id] = previous
				if s.acks != nil {
					s.unackedAt[id] = s.acks.Load()
				}
			}
			return Chat{}, err
		}
	}
	s.acknowledged()
	return got, nil
}

func (s *fakeStore) Delete(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.isDown(); err != nil {
		return err
	}
	previous, ok := s.chats[id]
	delete(s.chats, id)
	if ok && s.forgot != nil {
		if err := s.forgot(id); err != nil {
			if s.unacked != nil && !s.lost(id) {
				s.unacked[id] = previous
				if s.acks != nil {
					s.unackedAt[id] = s.acks.Load()
				}
			}
			return err
		}
	}
	s.acknowledged()
	return nil
}

func (s *fakeStore) List(context.Context, State, int, int64) ([]Chat, int64, error) {
	return nil, 0, fmt.Errorf("not used by the service")
}

func (s *fakeStore) Lock(_ context.Context, id, owner string, ttl time.Duration) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.isDown(); err != nil {
		return false, err
	}
	if l, ok := s.locks[id]; ok && l.owner != owner && s.now().Before(l.until) {
		return false, nil
	}
	s.locks[id] = fakeLease{owner, s.now().Add(ttl)}
	s.acknowledged()
	return true, nil
}

func (s *fakeStore) Unlock(_ context.Context, id, owner string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.isDown(); err != nil {
		return err
	}
	if s.locks[id].owner == owner {
		delete(s.locks, id)
	}
	return nil
}

func (s *fakeStore) Open(_ context.Context, shard, shards int) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.isDown(); err != nil {
		return nil, err
	}
	var out []string
	for _, id := range slices.Sorted(maps.Keys(s.chats)) {
		if c, _ := s.load(id); !c.State.Final() && ShardOf(id, shards) == shard%max(shards, 1) {
			out = append(out, id)
		}
	}
	return out, nil
}

func (s *fakeStore) WithPending(context.Context) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.isDown(); err != nil {
		return nil, err
	}
	var out []string
	for _, id := range slices.Sorted(maps.Keys(s.chats)) {
		if c, _ := s.load(id); c.HasWork() {
			out = append(out, id)
		}
	}
	return out, nil
}

// fakeNotifier records the events handed over; fail, when set, refuses them.
type fakeNotifier struct {
	mu     sync.Mutex
	handed []string
	fail   error
}

func (n *fakeNotifier) Notify(_ context.Context, _, eventID string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.fail != nil {
		return n.fail
	}
	n.handed = append(n.handed, eventID)
	return nil
}

func (n *fakeNotifier) count() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.handed)
}

// fakeWindows keeps each pair's last message in a map.
type fakeWindows struct {
	mu   sync.Mutex
	last map[string]time.Time
}

func (w *fakeWindows) Opened(_ context.Context, address, proxy string, at time.Time) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if at.After(w.last[address+"|"+proxy]) {
		w.last[address+"|"+proxy] = at
	}
	return nil
}

func (w *fakeWindows) Window(_ context.Context, address, proxy string) (Window, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return Window{LastInbound: w.last[address+"|"+proxy]}, nil
}

// fakeObserver counts what the relay reports.
type fakeObserver struct {
	mu                     sync.Mutex
	held, resent, nudges   int
	dropped                map[string]int
	transitions, fallbacks int
	parked                 int
	// calls counts calls connected, ended and refused (by reason).
	callsStarted, callsEnded int
	callsRefused             map[string]int
}

func (o *fakeObserver) CallStarted()                    { o.mu.Lock(); o.callsStarted++; o.mu.Unlock() }
func (o *fakeObserver) CallEnded(string, time.Duration) { o.mu.Lock(); o.callsEnded++; o.mu.Unlock() }
func (o *fakeObserver) CallRefused(reason string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.callsRefused == nil {
		o.callsRefused = map[string]int{}
	}
	o.callsRefused[reason]++
}

func (o *fakeObserver) ChatTransition(string, string) { o.mu.Lock(); o.transitions++; o.mu.Unlock() }
func (o *fakeObserver) NoFreeNumber()                 {}
func (o *fakeObserver) Reconciled(string, int)        {}
func (o *fakeObserver) OutboxResent(int)              {}
func (o *fakeObserver) MessagesHeld(n int)            { o.mu.Lock(); o.held += n; o.mu.Unlock() }
func (o *fakeObserver) MessagesResent(n int)          { o.mu.Lock(); o.resent += n; o.mu.Unlock() }
func (o *fakeObserver) Nudged()                       { o.mu.Lock(); o.nudges++; o.mu.Unlock() }
func (o *fakeObserver) ChannelFallback()              { o.mu.Lock(); o.fallbacks++; o.mu.Unlock() }
func (o *fakeObserver) WorkParked()                   { o.mu.Lock(); o.parked++; o.mu.Unlock() }
func (o *fakeObserver) MessagesDropped(reason string, n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.dropped == nil {
		o.dropped = map[string]int{}
	}
	o.dropped[reason] += n
}

// counts returns held, resent, nudges and the dropped by reason.
func (o *fakeObserver) counts() (int, int, int, map[string]int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.held, o.resent, o.nudges, maps.Clone(o.dropped)
}

// runWork is the chat work queue (Config.Work) of the tests: it runs a chat's work at once, in the
// caller (the simulation's determinism), or, async, on another goroutine, as a queue's worker would.
type runWork struct {
	svc   *Service
	async bool
}

func (w *runWork) Enqueue(ctx context.Context, id string) error {
	if w.async {
		go func() { _ = w.svc.tendAll(context.WithoutCancel(ctx), id) }()
		return nil
	}
	return w.svc.tendAll(ctx, id)
}

// workNow gives svc a queue that does a chat's work in the caller; workAsync one that does it on
// another goroutine.
func workNow(svc *Service)   { svc.cfg.Work = &runWork{svc: svc} }
func workAsync(svc *Service) { svc.cfg.Work = &runWork{svc: svc, async: true} }
