package chat

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/rs/zerolog"

	"github.com/optinkit/optin/internal/conversation"
	"github.com/optinkit/optin/internal/numberpool"
	"github.com/optinkit/optin/internal/twiliocall"
)

// pool is the pool of the party's channel.
func (s *Service) pool(p Party) Pool {
	if p.Channel() == ChannelSMS {
		return s.cfg.SMS
	}
	return s.cfg.WhatsApp
}

// lease leases the customer's and the rider's numbers: from one pool together when they share a
// channel (so that they may share a number), else each from its own.
func (s *Service) lease(ctx context.Context, c Chat) ([]string, error) {
	if c.Customer.Channel() == c.Rider.Channel() {
		return s.pool(c.Customer).Lease(ctx, c.ID, []string{c.Customer.Address, c.Rider.Address})
	}
	customer, err := s.pool(c.Customer).Lease(ctx, c.ID, []string{c.Customer.Address})
	if err != nil {
		return nil, err
	}
	rider, err := s.pool(c.Rider).Lease(ctx, c.ID, []string{c.Rider.Address})
	if err != nil {
		_ = s.pool(c.Customer).ReleaseAddress(context.WithoutCancel(ctx), c.ID, c.Customer.Address)
		return nil, err
	}
	return []string{customer[0], rider[0]}, nil
}

// release frees the chat's numbers in every pool.
func (s *Service) release(ctx context.Context, chatID string) error {
	err := s.cfg.WhatsApp.Release(ctx, chatID)
	if s.cfg.SMS != nil {
		err = errors.Join(err, s.cfg.SMS.Release(ctx, chatID))
	}
	return err
}

// renewNumbers starts the term of the chat's leases again, in every pool.
func (s *Service) renewNumbers(ctx context.Context, chatID string) error {
	err := s.cfg.WhatsApp.Renew(ctx, chatID)
	if s.cfg.SMS != nil {
		err = errors.Join(err, s.cfg.SMS.Renew(ctx, chatID))
	}
	return err
}

// leaseNumbers gives both parties a business number from the pool, before anything exists at Twilio:
// when the pool has none for a party, the chat is forgotten and its id may be used again.
func (s *Service) leaseNumbers(ctx context.Context, c Chat) (Chat, error) {
	// What the chat holds now, with no numbers recorded, an earlier run leased and lost the record of
	// (cut off before writing it, or its write lost in a failover): free it, or those pairs would
	// count as another chat's and this one find none.
	if err := s.release(ctx, c.ID); err != nil {
		return Chat{}, fmt.Errorf("%w: freeing numbers leased by an earlier run: %w", conversation.ErrUnavailable, err)
	}
	numbers, err := s.lease(ctx, c)
	if err != nil {
		var ex *numberpool.ExhaustedError
		if !errors.As(err, &ex) {
			return Chat{}, fmt.Errorf("%w: leasing numbers: %w", conversation.ErrUnavailable, err)
		}
		party := "rider"
		if ex.Address == c.Customer.Address {
			party = "customer"
		}
		// The lease may have taken the other party's number before it found none for this one, and
		// giving it back may have failed: the chat is forgotten only once it holds nothing (a repeated
		// start tries again).
		if rerr := s.release(context.WithoutCancel(ctx), c.ID); rerr != nil {
			return Chat{}, fmt.Errorf("%w: freeing the numbers of a start that found none: %w", conversation.ErrUnavailable, rerr)
		}
		if derr := s.store.Delete(context.WithoutCancel(ctx), c.ID); derr != nil {
			return Chat{}, fmt.Errorf("%w: forgetting chat %s: %w", conversation.ErrUnavailable, c.ID, derr)
		}
		s.noFreeNumber()
		return Chat{}, &NoNumberError{Party: party, Address: ex.Address, Err: err}
	}
	updated, err := s.store.Update(ctx, c.ID, func(c *Chat) error {
		c.Customer.ProxyAddress, c.Rider.ProxyAddress = numbers[0], numbers[1]
		c.Steps[stepNumbers] = strings.Join(numbers, ",")
		return nil
	})
	if err != nil {
		// Not recorded — unless the write landed and only its acknowledgement failed (a replica's
		// WAIT): read again, and free these (of this chat: c, not the zero chat the failed update
		// returned) only when the chat shows they were not recorded; the resumed start leases again.
		bg := context.WithoutCancel(ctx)
		if now, gerr := s.store.Get(bg, c.ID); gerr == nil && now.Steps[stepNumbers] == "" {
			if rerr := s.release(bg, c.ID); rerr != nil {
				zerolog.Ctx(ctx).Warn().Err(rerr).Str("chat_id", c.ID).Msg("freeing numbers not recorded; they lapse with the retention")
			}
		}
		return Chat{}, fmt.Errorf("%w: recording numbers: %w", conversation.ErrUnavailable, err)
	}
	return updated, nil
}

// leaseFor leases the party a number when it holds none (its pair was found bound elsewhere), and
// records it; none free is a *NoNumberError.
func (s *Service) leaseFor(ctx context.Context, c Chat, party string) (Chat, error) {
	// The caller's copy may predate a record of this lease whose writer heard it fail though it
	// landed (a replica's WAIT): the stored chat says what the party holds, or freeing "unrecorded"
	// leases would free a recorded one.
	stored, err := s.store.Get(ctx, c.ID)
	if err != nil {
		return Chat{}, fmt.Errorf("%w: reading the chat before leasing: %w", conversation.ErrUnavailable, err)
	}
	if stored.party(party).ProxyAddress != "" {
		// Written again, so that the replicas hold it (its writer heard it fail) before Twilio adds the
		// party on that number.
		again, err := s.store.Update(ctx, c.ID, func(*Chat) error { return nil })
		if err != nil {
			return Chat{}, fmt.Errorf("%w: recording a number again: %w", conversation.ErrUnavailable, err)
		}
		return again, nil
	}
	p := c.party(party)
	// What the chat holds for the party unrecorded (a run cut off after leasing) is freed first.
	if err := s.pool(*p).ReleaseAddress(ctx, c.ID, p.Address); err != nil {
		return Chat{}, fmt.Errorf("%w: freeing a number leased unrecorded: %w", conversation.ErrUnavailable, err)
	}
	numbers, err := s.pool(*p).Lease(ctx, c.ID, []string{p.Address})
	if ex, ok := errors.AsType[*numberpool.ExhaustedError](err); ok {
		s.noFreeNumber()
		return c, &NoNumberError{Party: party, Address: p.Address, Err: ex, TwilioCode: codePairInUse}
	}
	if err != nil {
		return Chat{}, fmt.Errorf("%w: leasing a number: %w", conversation.ErrUnavailable, err)
	}
	updated, err := s.store.Update(ctx, c.ID, func(c *Chat) error {
		c.party(party).ProxyAddress = numbers[0]
		c.Release = c.Release || c.State.Final() // ended meanwhile: its release went before this lease
		return nil
	})
	if err != nil {
		return Chat{}, fmt.Errorf("%w: recording a number: %w", conversation.ErrUnavailable, err)
	}
	return updated, nil
}

// addParticipant adds the party; one already in the conversation (an earlier attempt) counts as added.
// When Twilio answers that the party's pair is bound in a conversation the service did not make
// (50416), the pair is set aside and the party gets the pool's next free number.
func (s *Service) addParticipant(ctx context.Context, c *Chat, party string) error {
	for {
		if c.party(party).ProxyAddress == "" {
			// Its last pair was bound elsewhere and the next not recorded (a retry, a run cut off).
			updated, err := s.leaseFor(ctx, *c, party)
			if nn, ok := errors.AsType[*NoNumberError](err); ok {
				return &twiliocall.CallError{Op: "lease a number", Kind: twiliocall.Permanent, Code: codePairInUse, Err: nn}
			}
			if err != nil {
				return err
			}
			*c = updated
		}
		p := *c.party(party)
		err := s.conv.AddParticipant(ctx, c.ConversationSid, p.Address, p.ProxyAddress)
		switch twiliocall.Code(err) {
		case codeAlreadyPresent, codeSameBinding:
			return nil
		case codePairInUse:
		default:
			return err
		}
		zerolog.Ctx(ctx).Warn().Str("party", party).Str("proxy_address", p.ProxyAddress).Msg("pair bound in another conversation; taking the next number")
		// Recorded first: the party holds no number until the next is recorded. A run cut off (or a
		// write lost) between the two finds the party without one and leases again (leaseFor), freeing
		// what it holds unrecorded.
		updated, uerr := s.store.Update(ctx, c.ID, func(c *Chat) error {
			c.party(party).ProxyAddress = ""
			return nil
		})
		if uerr != nil {
			return fmt.Errorf("%w: recording the party's pair bound elsewhere: %w", conversation.ErrUnavailable, uerr)
		}
		*c = updated
		number, rerr := s.pool(p).Replace(ctx, c.ID, p.Address, p.ProxyAddress)
		if rerr != nil {
			var ex *numberpool.ExhaustedError
			if errors.As(rerr, &ex) {
				// The pair is blocked and no other is free: the party holds no number now.
				s.noFreeNumber()
				// Permanent: no retry of the step can find a number the pool does not have.
				return &twiliocall.CallError{Op: "lease a number", Kind: twiliocall.Permanent, Code: codePairInUse,
					Err: &NoNumberError{Party: party, Address: p.Address, Err: rerr, TwilioCode: codePairInUse}}
			}
			return rerr
		}
		updated, uerr = s.store.Update(ctx, c.ID, func(c *Chat) error {
			c.party(party).ProxyAddress = number
			c.Release = c.Release || c.State.Final() // ended meanwhile: its release went before this lease
			return nil
		})
		if uerr != nil {
			return uerr
		}
		*c = updated
	}
}
