package twiliocall

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/rs/zerolog"
)

// MarkerLookback is how many of a conversation's newest messages are searched for a marker.
const MarkerLookback = 50

// Posted is a message already in a conversation, as a marker search sees it.
type Posted struct {
	Sid        string
	Attributes string
}

// Recent lists up to limit of a conversation's newest messages.
type Recent func(ctx context.Context, limit int) ([]Posted, error)

// FindMarked returns the SID of the newest message whose Attributes match, "" when there is none. When
// the search itself fails permanently it reports nothing found: the step is then created rather than
// failed.
func FindMarked(ctx context.Context, recent Recent, match func(attributes string) bool) (string, error) {
	msgs, err := recent(ctx, MarkerLookback)
	if ce := (*CallError)(nil); errors.As(err, &ce) && ce.Kind == Permanent {
		zerolog.Ctx(ctx).Warn().Err(err).Msg("cannot look for an earlier attempt; creating")
		return "", nil
	}
	if err != nil {
		return "", err
	}
	for _, m := range msgs {
		if match(m.Attributes) {
			return m.Sid, nil
		}
	}
	return "", nil
}

// CreateOnce makes a message (or anything found by a marker) exactly once under retries: after a
// failure whose effect is unknown — in this call or, with lookFirst, in an earlier one — it looks for
// the marker before creating again, so an ambiguous failure never produces a second one.
func CreateOnce(ctx context.Context, p RetryPolicy, obs Observer, op string, lookFirst bool,
	recent Recent, match func(string) bool, create func(context.Context) (string, error)) (string, error) {
	return Retry(ctx, p, obs, op, func(ctx context.Context) (string, error) {
		if lookFirst {
			sid, err := FindMarked(ctx, recent, match)
			if err != nil || sid != "" {
				if sid != "" {
					zerolog.Ctx(ctx).Info().Str("step", op).Str("found_sid", sid).Msg("step already done by an earlier attempt")
				}
				return sid, err
			}
		}
		sid, err := create(ctx)
		if err != nil && KindOf(err) != Retryable && KindOf(err) != Permanent {
			lookFirst = true
		}
		return sid, err
	})
}

// Close closes a conversation, retried; one already closed (50377) or gone (404) counts as closed.
func Close(ctx context.Context, p RetryPolicy, obs Observer, op string, close func(context.Context) error) error {
	_, err := Retry(ctx, p, obs, op, func(ctx context.Context) (struct{}, error) {
		err := close(ctx)
		if Code(err) == CodeClosed || IsNotFound(err) {
			return struct{}{}, nil
		}
		return struct{}{}, err
	})
	return err
}

// Marker is the Attributes JSON that marks a message the service creates, {"optin": fields}, so that a
// retry finds it (CreateOnce, FindMarked) and readers tell the service's messages from people's. The
// fields are written in sorted order: the same fields make the same marker.
func Marker(fields map[string]string) string {
	b, _ := json.Marshal(map[string]map[string]string{"optin": fields})
	return string(b)
}

// HasMarker reports whether attributes carry a marker with every one of fields (others may be there).
func HasMarker(attributes string, fields map[string]string) bool {
	var d struct {
		OptIn map[string]any `json:"optin"`
	}
	if json.Unmarshal([]byte(attributes), &d) != nil || d.OptIn == nil {
		return false
	}
	for k, v := range fields {
		if s, ok := d.OptIn[k].(string); !ok || s != v {
			return false
		}
	}
	return true
}
