// Package numberpool picks the business numbers a chat's parties talk to. Twilio binds each (person's
// address, business number) pair to one active conversation (50416), so a rider with several orders,
// or a customer with two deliveries, needs a different number per chat. The pool leases a free pair
// for each party — preferring the number the person used before, and one number for both parties —
// atomically across replicas through its Store.
package numberpool

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/optinkit/optin/internal/pii"
)

// Pair is one person's address and the business number (proxy address) they talk to.
type Pair struct {
	Address, Number string
}

// Store keeps the pairs leased to chats. Take must be atomic across replicas.
type Store interface {
	// Take leases every pair to chatID unless any of them is leased or blocked; it also remembers each
	// pair's number as its address's last.
	Take(ctx context.Context, chatID string, pairs []Pair) (bool, error)
	// Release frees every pair leased to chatID.
	Release(ctx context.Context, chatID string) error
	// ReleaseAddress frees the pairs of address leased to chatID (a party that left the chat's
	// conversation), and only those.
	ReleaseAddress(ctx context.Context, chatID, address string) error
	// Renew starts the lease term of every pair leased to chatID again, as when it was taken.
	Renew(ctx context.Context, chatID string) error
	// Block keeps a pair from being leased for ttl — Twilio says it is bound outside the service — and
	// drops any lease of it.
	Block(ctx context.Context, p Pair, ttl time.Duration) error
	// Last returns the number the address was last leased, "" when none.
	Last(ctx context.Context, address string) (string, error)
	// InUse counts the pairs leased per number.
	InUse(ctx context.Context) (map[string]int, error)
}

// ExhaustedError says that no number of the pool is free for a party.
type ExhaustedError struct {
	Address string
	Pool    string
}

func (e *ExhaustedError) Error() string {
	return fmt.Sprintf("no number of the %s pool is free for %s: each of its pairs is in another active conversation", e.Pool, pii.Mask(e.Address))
}

// BlockFor is how long a pair Twilio reported bound (50416) stays out of the pool.
const BlockFor = time.Hour

// Pool is the business numbers of one channel.
type Pool struct {
	name    string
	numbers []string
	store   Store
}

// New returns a pool of numbers (in order of preference) named for messages, e.g. "WhatsApp".
func New(name string, numbers []string, store Store) (*Pool, error) {
	if len(numbers) == 0 {
		return nil, errors.New("numberpool: no numbers")
	}
	if store == nil {
		return nil, errors.New("numberpool: nil store")
	}
	return &Pool{name: name, numbers: slices.Compact(slices.Clone(numbers)), store: store}, nil
}

// Contains reports whether number belongs to the pool.
func (p *Pool) Contains(number string) bool { return slices.Contains(p.numbers, number) }

// Lease leases one number for each address to chatID and returns them in the same order: one number
// for all when one is free for every address, else a number per address; each address's last number
// first. *ExhaustedError names the first address no number is free for; nothing this call leased
// stays leased then, and what the chat held before stays as it was.
func (p *Pool) Lease(ctx context.Context, chatID string, addresses []string) ([]string, error) {
	order, err := p.preference(ctx, addresses)
	if err != nil {
		return nil, err
	}
	for _, n := range order {
		pairs := make([]Pair, len(addresses))
		for i, a := range addresses {
			pairs[i] = Pair{a, n}
		}
		ok, err := p.store.Take(ctx, chatID, pairs)
		if err != nil {
			return nil, err
		}
		if ok {
			return slices.Repeat([]string{n}, len(addresses)), nil
		}
	}
	out := make([]string, len(addresses))
	for i, a := range addresses {
		n, err := p.leaseOne(ctx, chatID, a)
		if err != nil {
			// Free only what this call took: the chat may hold other pairs (its WhatsApp pair while
			// its customer is moved to SMS), in this pool or another sharing the store.
			for _, taken := range addresses[:i] {
				_ = p.store.ReleaseAddress(context.WithoutCancel(ctx), chatID, taken)
			}
			return nil, err
		}
		out[i] = n
	}
	return out, nil
}

// Replace blocks a pair Twilio reported bound elsewhere and leases the address another number.
func (p *Pool) Replace(ctx context.Context, chatID, address, number string) (string, error) {
	if err := p.store.Block(ctx, Pair{Address: address, Number: number}, BlockFor); err != nil {
		return "", err
	}
	return p.leaseOne(ctx, chatID, address)
}

// Release frees the chat's pairs.
func (p *Pool) Release(ctx context.Context, chatID string) error { return p.store.Release(ctx, chatID) }

// ReleaseAddress frees the address's pairs leased to chatID: the party left the conversation.
func (p *Pool) ReleaseAddress(ctx context.Context, chatID, address string) error {
	return p.store.ReleaseAddress(ctx, chatID, address)
}

// Renew keeps the chat's pairs leased for another term: a chat that stays open longer than a lease
// lasts (its conversation closes only after inactivity) must not lose its numbers.
func (p *Pool) Renew(ctx context.Context, chatID string) error { return p.store.Renew(ctx, chatID) }

func (p *Pool) leaseOne(ctx context.Context, chatID, address string) (string, error) {
	order, err := p.preference(ctx, []string{address})
	if err != nil {
		return "", err
	}
	for _, n := range order {
		ok, err := p.store.Take(ctx, chatID, []Pair{{address, n}})
		if err != nil {
			return "", err
		}
		if ok {
			return n, nil
		}
	}
	return "", &ExhaustedError{Address: address, Pool: p.name}
}

// preference orders the pool: the addresses' last numbers first, then the rest as configured.
func (p *Pool) preference(ctx context.Context, addresses []string) ([]string, error) {
	var first []string
	for _, a := range addresses {
		n, err := p.store.Last(ctx, a)
		if err != nil {
			return nil, err
		}
		if n != "" && p.Contains(n) && !slices.Contains(first, n) {
			first = append(first, n)
		}
	}
	rest := slices.DeleteFunc(slices.Clone(p.numbers), func(n string) bool { return slices.Contains(first, n) })
	return append(first, rest...), nil
}

// Usage is one number's load.
type Usage struct {
	Number string
	// Channel is "whatsapp" or "sms".
	Channel string
	InUse   int
}

// Usage reports the pairs in use on each number of the pool.
func (p *Pool) Usage(ctx context.Context) ([]Usage, error) {
	counts, err := p.store.InUse(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Usage, 0, len(p.numbers))
	for _, n := range p.numbers {
		ch := "sms"
		if strings.HasPrefix(n, "whatsapp:") {
			ch = "whatsapp"
		}
		out = append(out, Usage{Number: n, Channel: ch, InUse: counts[n]})
	}
	return out, nil
}
