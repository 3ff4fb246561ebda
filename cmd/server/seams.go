package main

import (
	"context"
	"net"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/optinkit/optin/internal/chat"
)

// The context values by which tests reach into run: where it listens, what it listens on, and faults
// to inject. Production leaves them unset.

// readyKey carries, in run's context, a func that run calls with its listening addresses once it
// serves; tests start run on port 0 and learn the ports from it.
type readyKey struct{}

// listening is where run serves: the main address, and the admin API's when it has its own.
type listening struct{ addr, admin string }

func withReady(ctx context.Context, ready func(listening)) context.Context {
	return context.WithValue(ctx, readyKey{}, ready)
}

// listenerKey carries a net.Listener that run serves on instead of listening on OPTIN_ADDR: tests use it
// to make the server fail.
type listenerKey struct{}

func withListener(ctx context.Context, ln net.Listener) context.Context {
	return context.WithValue(ctx, listenerKey{}, ln)
}

// adminListenerKey is listenerKey for the admin listener (OPTIN_ADMIN_ADDR).
type adminListenerKey struct{}

func withAdminListener(ctx context.Context, ln net.Listener) context.Context {
	return context.WithValue(ctx, adminListenerKey{}, ln)
}

// notifyFaultKey carries, in run's context, a func that each hand-over of a chat event passes through
// first: tests use it to make the queueing of events fail after their transition was written.
type notifyFaultKey struct{}

func withNotifyFault(ctx context.Context, fault func() error) context.Context {
	return context.WithValue(ctx, notifyFaultKey{}, fault)
}

// clockKey carries, in run's context, the clock the chats read (how long a message has been held):
// tests move it forward rather than wait.
type clockKey struct{}

func withClock(ctx context.Context, now func() time.Time) context.Context {
	return context.WithValue(ctx, clockKey{}, now)
}

// tracerKey carries, in run's context, the trace.TracerProvider run makes its spans with, instead of
// the one the OTEL_* variables would set up: tests record spans in memory.
type tracerKey struct{}

func withTracerProvider(ctx context.Context, tp trace.TracerProvider) context.Context {
	return context.WithValue(ctx, tracerKey{}, tp)
}

// testSeams are the seams a test set in run's context; production has none.
type testSeams struct {
	notifyFault func() error
	clock       func() time.Time
}

func seamsOf(ctx context.Context) testSeams {
	var t testSeams
	t.notifyFault, _ = ctx.Value(notifyFaultKey{}).(func() error)
	t.clock, _ = ctx.Value(clockKey{}).(func() time.Time)
	return t
}

// faultyNotifier fails when its fault says so, else hands over.
type faultyNotifier struct {
	chat.Notifier
	fault func() error
}

func (n faultyNotifier) Notify(ctx context.Context, chatID, eventID string) error {
	if err := n.fault(); err != nil {
		return err
	}
	return n.Notifier.Notify(ctx, chatID, eventID)
}
