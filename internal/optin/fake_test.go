package optin

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/optinkit/optin/internal/conversation"
)

// fakeConversations records every call and fails as scripted.
type fakeConversations struct {
	mu       sync.Mutex
	created  []createCall
	messages []conversation.PostedMessage // what the conversation holds, newest last
	webhooks []string
	// lifecycle marks webhooks armed for onConversationStateUpdated only.
	lifecycle map[string]bool
	closes    int
	failClose []error
	lists     int
	recent    int
	deletes   []string

	// failCreate scripts failures by step: each call pops one; applied reports whether the message was
	// created all the same (an ambiguous failure).
	failCreate map[string][]scripted
	failList   []error
	failRecent []error
	failDelete map[string][]error
	// block, when set, holds every create until closed.
	block chan struct{}
}

type createCall struct {
	Conversation string
	Message      conversation.Message
}

type scripted struct {
	err     error
	applied bool
}

// stepOf is the step a message's marker names, "" when none.
func stepOf(attributes string) string {
	var d struct {
		OptIn struct {
			Step string `json:"step"`
		} `json:"optin"`
	}
	_ = jsonUnmarshal(attributes, &d)
	return d.OptIn.Step
}

func (f *fakeConversations) CreateMessage(ctx context.Context, conv string, m conversation.Message) (string, error) {
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.created = append(f.created, createCall{conv, m})
	step := stepOf(m.Attributes)
	sid := fmt.Sprintf("IM%03d", len(f.created))
	if q := f.failCreate[step]; len(q) > 0 {
		f.failCreate[step] = q[1:]
		if q[0].applied {
			f.messages = append(f.messages, conversation.PostedMessage{Sid: sid, Attributes: m.Attributes})
		}
		return "", q[0].err
	}
	f.messages = append(f.messages, conversation.PostedMessage{Sid: sid, Attributes: m.Attributes})
	return sid, nil
}

func (f *fakeConversations) RecentMessages(_ context.Context, _ string, limit int) ([]conversation.PostedMessage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.recent++
	if err := pop(&f.failRecent); err != nil {
		return nil, err
	}
	var out []conversation.PostedMessage
	for i := len(f.messages) - 1; i >= 0 && len(out) < limit; i-- {
		out = append(out, f.messages[i])
	}
	return out, nil
}

func (f *fakeConversations) ScopedWebhooks(context.Context, string) ([]conversation.Webhook, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists++
	if err := pop(&f.failList); err != nil {
		return nil, err
	}
	var out []conversation.Webhook
	for _, sid := range f.webhooks {
		filters := []string{conversation.EventMessageAdded}
		if f.lifecycle[sid] {
			filters = []string{"onConversationStateUpdated"}
		}
		out = append(out, conversation.Webhook{Sid: sid, Filters: filters})
	}
	return out, nil
}

func (f *fakeConversations) CloseConversation(context.Context, string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closes++
	return pop(&f.failClose)
}

func (f *fakeConversations) DeleteWebhook(_ context.Context, _ string, sid string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deletes = append(f.deletes, sid)
	if q, ok := f.failDelete[sid]; ok {
		err := pop(&q)
		f.failDelete[sid] = q
		return err
	}
	return nil
}

// pop takes the next scripted error off q, nil when none is left.
func pop(q *[]error) error {
	if len(*q) == 0 {
		return nil
	}
	err := (*q)[0]
	*q = (*q)[1:]
	return err
}

func (f *fakeConversations) snapshot() (created []createCall, lists int, deletes []string, recent int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]createCall(nil), f.created...), f.lists, append([]string(nil), f.deletes...), f.recent
}

// fakeStore is the smallest correct Store; the store packages have their own tests.
type fakeStore struct {
	mu    sync.Mutex
	flows map[string]Flow
	// records is each StepsDone's steps, in order.
	records []map[string]string
}

func (s *fakeStore) Claim(_ context.Context, f Flow) (Flow, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.flows == nil {
		s.flows = map[string]Flow{}
	}
	if e, ok := s.flows[f.ConversationSid]; ok {
		return e, false, nil
	}
	f.Steps = map[string]string{}
	s.flows[f.ConversationSid] = f
	return f, true, nil
}

func (s *fakeStore) Flow(_ context.Context, conv string) (Flow, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.flows[conv]
	if !ok {
		return Flow{}, ErrNoFlow
	}
	f.Steps = maps.Clone(f.Steps)
	return f, nil
}

func (s *fakeStore) Begin(_ context.Context, conv string) (Flow, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.flows[conv]
	f.Runs++
	s.flows[conv] = f
	f.Steps = maps.Clone(f.Steps)
	return f, nil
}

func (s *fakeStore) StepsDone(_ context.Context, conv string, steps map[string]string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records = append(s.records, maps.Clone(steps))
	maps.Copy(s.flows[conv].Steps, steps)
	return nil
}

func (s *fakeStore) Sync(context.Context) error { return nil }

func (s *fakeStore) Finish(_ context.Context, conv string, st State, detail string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.flows[conv]
	f.State, f.Detail = st, detail
	s.flows[conv] = f
	return nil
}

func (s *fakeStore) stepRecords() []map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.records)
}

func (s *fakeStore) get(conv string) Flow {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.flows[conv]
}

// fakeQueue runs work in goroutines, again at once after a failed run, and gives up after maxRuns.
type fakeQueue struct {
	svc      *Service
	maxRuns  int
	mu       sync.Mutex
	active   map[string]bool
	enqueued int
	wg       sync.WaitGroup
}

func (q *fakeQueue) Enqueue(ctx context.Context, conv string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.enqueued++
	if q.active[conv] {
		return nil
	}
	q.active[conv] = true
	q.wg.Go(func() {
		for n := 1; ; n++ {
			err := q.svc.Work(context.WithoutCancel(ctx), conv)
			if err == nil {
				break
			}
			if n == q.maxRuns {
				_ = q.svc.GiveUp(context.WithoutCancel(ctx), conv, err)
				break
			}
		}
		q.mu.Lock()
		delete(q.active, conv)
		q.mu.Unlock()
	})
	return nil
}
