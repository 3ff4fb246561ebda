// Command optin-server serves Twilio Conversations' onMessageAdded webhook and performs the two-sided
// WhatsApp opt-in of each conversation exactly once.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"

	"github.com/optinkit/optin/internal/authlimit"
	"github.com/optinkit/optin/internal/callback"
	"github.com/optinkit/optin/internal/chat"
	"github.com/optinkit/optin/internal/console"
	"github.com/optinkit/optin/internal/guard"
	"github.com/optinkit/optin/internal/handlers"
	"github.com/optinkit/optin/internal/metrics"
	"github.com/optinkit/optin/internal/numberpool"
	"github.com/optinkit/optin/internal/optin"
	"github.com/optinkit/optin/internal/signature"
	"github.com/optinkit/optin/internal/tracing"
	"github.com/optinkit/optin/internal/twilioapi"
	"github.com/optinkit/optin/internal/twiliocall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "optin-server:", err)
		os.Exit(1)
	}
}

// run is the whole program: the configuration comes through getenv and nothing else, so tests pass a
// map and run in parallel. It returns when ctx ends and shutdown is complete.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 1 {
		switch args[1] {
		case "version":
			return runVersion(stdout)
		case "healthcheck":
			return runHealthcheck(ctx, args[2:], getenv, stdout, stderr)
		}
	}
	fs := flag.NewFlagSet("optin-server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	demoFlag := fs.Bool("demo", false, "run against a built-in Twilio emulator and play the guide's story")
	fs.Usage = func() {
		fmt.Fprintf(stdout, "Usage: optin-server [-demo] | version | healthcheck [-url URL]\n\nServes Twilio Conversations' onMessageAdded webhook at /webhooks/conversations.\n")
		fmt.Fprintf(stdout, "  -demo  run against a built-in Twilio emulator with generated credentials and play the\n         guide's story\n\n")
		fmt.Fprintf(stdout, "Configuration comes from the environment:\n\n")
		_ = writeSettings(stdout)
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}

	raw, err := readConfig(getenv)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	var dm *demo
	logOut := stdout
	if *demoFlag || raw.Demo {
		if dm, err = startDemo(raw.RiderMessage); err != nil {
			return err
		}
		defer dm.close(context.WithoutCancel(ctx))
		dm.configure(&raw)
		logOut = stderr
	}
	cfg, err := raw.validate()
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	log := newLogger(cfg, logOut)
	log.Info().Object("config", cfg.config).Msg("starting")

	// Take the ports first: a taken port fails the start before anything else is set up.
	ln, ok := ctx.Value(listenerKey{}).(net.Listener)
	if !ok {
		if ln, err = net.Listen("tcp", cfg.Addr); err != nil {
			return fmt.Errorf("OPTIN_ADDR: listening on %s: %w", cfg.Addr, err)
		}
	}
	defer ln.Close()
	if cfg.DebugAddr != "" {
		dbg, dln, err := debugServer(cfg.DebugAddr)
		if err != nil {
			return err
		}
		go func() { _ = dbg.Serve(dln) }()
		defer dbg.Close()
		log.Info().Str("addr", dln.Addr().String()).Msg("pprof listening")
	}

	tp, flushTraces, err := tracerProvider(ctx, getenv)
	if err != nil {
		return err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
		defer cancel()
		if err := flushTraces(ctx); err != nil {
			log.Warn().Err(err).Msg("flushing traces")
		}
	}()
	if tp != nil {
		log.Info().Msg("tracing on: spans are exported as the OTEL_* variables say")
	}
	tracer := tracing.Tracer(tp)
	be, err := openBackend(ctx, cfg.config, log, tracer)
	if err != nil {
		return err
	}
	// From here every return shuts the queue down and releases the backend, within the shutdown timeout.
	var closeOnce sync.Once
	closeBackend := func(ctx context.Context) {
		closeOnce.Do(func() {
			if err := be.close(ctx); err != nil {
				log.Error().Err(err).Msg("opt-ins abandoned at shutdown timeout")
			}
		})
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
		defer cancel()
		closeBackend(ctx)
	}()
	reg := prometheus.NewRegistry()
	m := metrics.New(reg, be.queue.Depth)

	user, pass := cfg.restCredentials()
	conv, err := twilioapi.New(twilioapi.Options{
		AccountSid: cfg.AccountSid,
		Username:   user,
		Password:   pass,
		BaseURL:    cfg.TwilioAPIURL,
		Observe:    m.TwilioRequest,
		Tracer:     tracer,

		ConversationsService: cfg.ConversationsSvc,
	})
	if err != nil {
		return fmt.Errorf("twilio client: %w", err)
	}

	var chats *chat.Service
	var pools poolSet
	if len(cfg.adminTokens) > 0 {
		webhookBase := strings.TrimSuffix(cfg.PublicURL, "/")
		if cfg.Demo {
			webhookBase = "http://" + ln.Addr().String() // the emulator calls the service where it listens
			dm.serviceURL = webhookBase
		}
		if chats, pools, err = newChats(cfg, conv, be, webhookBase, m, seamsOf(ctx)); err != nil {
			return err
		}
		if cfg.NudgeContentSid == "" {
			log.Info().Msg("OPTIN_NUDGE_CONTENT_SID is not set: messages held for a closed WhatsApp window are sent again when their party writes, but nobody is nudged to write")
		}
	}
	svc, err := newOptin(cfg, conv, be, m, chats)
	if err != nil {
		return err
	}
	if err := be.queue.Start(svc); err != nil {
		return fmt.Errorf("starting workers: %w", err)
	}

	var admin, cons http.Handler
	if chats != nil {
		if admin, cons, err = newAdmin(cfg, chats, pools, be, dm); err != nil {
			return err
		}
	}

	var serving atomic.Bool
	ready := func(ctx context.Context) error {
		if !serving.Load() {
			return errors.New("shutting down")
		}
		return be.ping(ctx)
	}
	// The public listener's /metrics does not name the business numbers; the admin listener's does.
	var hookState guardHookState
	opts := handlers.Options{Metrics: m, MetricsHandler: metrics.Handler(withoutNumbers(reg)), Tracer: tracer, ReadyDetail: hookState.detail}
	if chats != nil {
		opts.Lifecycle = chats
		opts.Voice = &handlers.Voice{Calls: chats, AccountSid: cfg.AccountSid, TimeLimit: cfg.CallTimeLimit,
			Unavailable: cfg.CallUnavailable, Whisper: cfg.CallWhisper, CallbackBase: cfg.PublicURL}
		opts.Mask = &handlers.Mask{Chats: chats, AccountSid: cfg.AccountSid, AfterEndText: cfg.AfterEndText,
			NeverChattedText: cfg.NeverChattedText, NeverChattedEvery: cfg.AfterEndEvery, Metrics: m, GuardOff: cfg.guard.Mode == guard.Off}
	}
	if cfg.AdminAddr == "" {
		opts.Admin, opts.Console = admin, cons
	}
	router, err := handlers.NewRouter(log, svc, signature.New(cfg.AuthToken, cfg.AuthTokenSecondary),
		handlers.SignedURL{Public: cfg.publicURL, TrustProxy: cfg.TrustProxy}, ready, opts)
	if err != nil {
		return fmt.Errorf("router: %w", err)
	}
	// Either listener failing stops the process: a service whose API is gone must not look healthy.
	serveErr := make(chan error, 2)
	var adminSrv *http.Server
	var adminAddr string
	if cfg.AdminAddr != "" {
		if adminSrv, adminAddr, err = serveAdmin(ctx, cfg.AdminAddr, handlers.NewAdminServer(log, handlers.Traced(tracer, admin), cons, metrics.Handler(reg), ready), serveErr); err != nil {
			return err
		}
		log.Info().Str("addr", adminAddr).Msg("admin API listening")
	}
	srv := newHTTPServer(router)
	go func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			serveErr <- err
		}
	}()
	serving.Store(true)
	addr := ln.Addr().String()
	log.Info().Str("addr", addr).Msg("listening")
	if f, ok := ctx.Value(readyKey{}).(func(listening)); ok {
		f(listening{addr: addr, admin: adminAddr})
	}
	// The upkeep of chats (outbox sweep, reconcile) stops before the backend closes.
	stopUpkeep := func() {}
	if chats != nil {
		stopUpkeep = startUpkeep(log.WithContext(context.WithoutCancel(ctx)), chats)
		defer stopUpkeep()
	}
	if wantGuardHookCheck(ctx, cfg) {
		go func() {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*cfg.TwilioTimeout)
			defer cancel()
			checkGuardHook(ctx, log, conv, strings.TrimSuffix(cfg.PublicURL, "/")+"/webhooks/conversations", m, &hookState)
		}()
	}
	if dm != nil {
		go func() {
			if err := dm.play(ctx, dm.serviceURL, stdout); err != nil {
				log.Error().Err(err).Msg("demo failed")
				fmt.Fprintln(stdout, "demo failed:", err)
			}
		}()
	}

	var failed error
	select {
	case err := <-serveErr:
		failed = fmt.Errorf("serving: %w", err)
		log.Error().Err(err).Msg("server failed")
	case <-ctx.Done():
	}

	// Both ways out end here: stop taking requests, then let the work in flight finish.
	serving.Store(false)
	log.Info().Dur("timeout", cfg.ShutdownTimeout).Msg("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	for _, s := range []*http.Server{srv, adminSrv} {
		if s == nil {
			continue
		}
		if err := s.Shutdown(shutdownCtx); err != nil {
			log.Error().Err(err).Msg("requests still open at shutdown timeout")
		}
	}
	stopUpkeep()
	closeBackend(shutdownCtx)
	log.Info().Msg("stopped")
	return failed
}

// newOptin builds the opt-in flow on the backend's store and queue, telling chats (when the API is on)
// how their opt-ins advance.
func newOptin(cfg settings, conv *twilioapi.Client, be *backend, m *metrics.Metrics, chats *chat.Service) (*optin.Service, error) {
	optinCfg := optin.Config{
		WaitMessage: cfg.WaitMessage,
		RiderOptIn: optin.Template{
			Body:             cfg.RiderMessage,
			ContentSid:       cfg.RiderContentSid,
			ContentVariables: cfg.RiderContentVar,
		},
		Retry:           twiliocall.RetryPolicy{CallTimeout: cfg.TwilioTimeout},
		Observer:        m,
		Consent:         optin.NewConsent(keywords(cfg.DeclineKeywords), keywords(cfg.OptOutKeywords)),
		DeclineMessage:  cfg.DeclineMessage,
		SMSRiderMessage: cfg.SMSRiderMessage,
	}
	if chats != nil { // a nil *Service in the interface would not read as absent
		optinCfg.Chats = chats
	}
	svc, err := optin.NewService(conv, be.store, be.queue, optinCfg)
	if err != nil {
		return nil, fmt.Errorf("opt-in service: %w", err)
	}
	return svc, nil
}

// newAdmin builds the admin API and the console, sharing one budget of failed authentications per
// client. On the public listener, behind the webhook's ingress, a client is who X-Forwarded-For says
// when OPTIN_TRUST_PROXY_HEADERS is set; on the admin listener (OPTIN_ADMIN_ADDR), reached without
// that ingress, always its connection's address: a header a client sets itself must not pick its budget.
func newAdmin(cfg settings, chats *chat.Service, pools poolSet, be *backend, dm *demo) (admin, cons http.Handler, err error) {
	guard := authlimit.New(authlimit.DefaultBurst, authlimit.DefaultEvery, cfg.TrustProxy && cfg.AdminAddr == "")
	if admin, err = handlers.NewAdminRouter(chats, pools, cfg.adminTokens, guard, handlers.OpenAPI); err != nil {
		return nil, nil, fmt.Errorf("admin API: %w", err)
	}
	copts := console.Options{Chats: chats, Pools: pools, Tokens: cfg.adminTokens, Guard: guard, Revocations: be.revocations}
	if dm != nil {
		copts.Demo = dm
	}
	if cons, err = console.New(copts); err != nil {
		return nil, nil, fmt.Errorf("console: %w", err)
	}
	return admin, cons, nil
}

// serveAdmin serves h on its own listener (OPTIN_ADMIN_ADDR, or the test's); a failure of it is sent
// to serveErr, as the main listener's is.
func serveAdmin(ctx context.Context, addr string, h http.Handler, serveErr chan<- error) (*http.Server, string, error) {
	ln, ok := ctx.Value(adminListenerKey{}).(net.Listener)
	if !ok {
		var err error
		if ln, err = net.Listen("tcp", addr); err != nil {
			return nil, "", fmt.Errorf("OPTIN_ADMIN_ADDR: listening on %s: %w", addr, err)
		}
	}
	srv := newHTTPServer(h)
	go func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			serveErr <- fmt.Errorf("admin listener: %w", err)
		}
	}()
	return srv, ln.Addr().String(), nil
}

// startUpkeep runs the chats' upkeep (outbox sweep, reconcile) until the returned stop is called,
// which waits for it.
func startUpkeep(ctx context.Context, chats *chat.Service) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); chats.Maintain(ctx) }()
	var once sync.Once
	return func() { once.Do(func() { cancel(); <-done }) }
}

// newHTTPServer bounds what one client can hold: headers, bodies and idle connections.
func newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
}

// newChats builds the chats API's parts: the number pools, the events' delivery when a callback URL is
// set, and the chats service on them.
func newChats(cfg settings, conv *twilioapi.Client, be *backend, webhookBase string, m *metrics.Metrics, t testSeams) (*chat.Service, poolSet, error) {
	var pools poolSet
	var err error
	if pools.WhatsApp, err = numberpool.New("WhatsApp", cfg.whatsAppPool, be.pairs); err != nil {
		return nil, pools, fmt.Errorf("number pool: %w", err)
	}
	if len(cfg.smsPool) > 0 {
		if pools.SMS, err = numberpool.New("SMS", cfg.smsPool, be.pairs); err != nil {
			return nil, pools, fmt.Errorf("number pool: %w", err)
		}
	}
	m.WatchPool(pools.Usage)
	cc := chat.Config{
		WhatsApp:          pools.WhatsApp,
		WebhookURL:        webhookBase + "/webhooks/conversations",
		InviteContentSid:  cfg.InviteContentSid,
		DefaultTTL:        cfg.ChatTTL,
		StartBudget:       cfg.ChatStartTimeout,
		Limiter:           be.creates,
		Observer:          m,
		Retry:             twiliocall.RetryPolicy{CallTimeout: cfg.TwilioTimeout},
		ReconcileInterval: cfg.ReconcileEvery,
		ReconcileRate:     float64(cfg.ReconcileRate),
		Windows:           be.windows,
		Pairs:             be.pairs,
		HoldMax:           cfg.HoldMax,
		HoldLimit:         cfg.HoldLimit,
		HoldLimitBytes:    cfg.HoldLimitBytes,
		NudgeContentSid:   cfg.NudgeContentSid,
		SMSInvite:         cfg.InviteSMSBody,
		Guard:             cfg.guard,
		AfterEndEvery:     cfg.AfterEndEvery,
		Now:               t.clock,
		Tracer:            be.tracer,
	}
	if pools.SMS != nil { // a nil *Pool in the interface would not read as absent
		cc.SMS = pools.SMS
	}
	if cfg.CallbackURL != "" {
		sender, err := callback.NewSender(cfg.CallbackURL, cfg.CallbackSecret, cfg.TwilioTimeout)
		if err != nil {
			return nil, pools, fmt.Errorf("OPTIN_CALLBACK_SECRET: %w", err)
		}
		if err := be.callbacks.Start(callback.NewWorker(be.chats, sender, m)); err != nil {
			return nil, pools, fmt.Errorf("starting callback workers: %w", err)
		}
		cc.Notifier = callback.Notifier{Queue: be.callbacks}
		if t.notifyFault != nil {
			cc.Notifier = faultyNotifier{cc.Notifier, t.notifyFault}
		}
	}
	cc.Work = be.chatWork
	chats, err := chat.NewService(conv, be.chats, cc)
	if err != nil {
		return nil, pools, fmt.Errorf("chats: %w", err)
	}
	if err := be.chatWork.Start(chats.Worker()); err != nil {
		return nil, pools, fmt.Errorf("starting chat workers: %w", err)
	}
	return chats, pools, nil
}

// poolSet is the number pools: WhatsApp's, and SMS's when numbers are configured.
type poolSet struct {
	WhatsApp, SMS *numberpool.Pool
}

// Usage reports every number of every pool.
func (p poolSet) Usage(ctx context.Context) ([]numberpool.Usage, error) {
	out, err := p.WhatsApp.Usage(ctx)
	if err != nil || p.SMS == nil {
		return out, err
	}
	sms, err := p.SMS.Usage(ctx)
	return append(out, sms...), err
}

// keywords splits a comma-separated list; nil (the defaults) when it is empty.
func keywords(list string) []string {
	var out []string
	for k := range strings.SplitSeq(list, ",") {
		if k = strings.TrimSpace(k); k != "" {
			out = append(out, k)
		}
	}
	return out
}

func newLogger(cfg settings, stdout io.Writer) zerolog.Logger {
	out := stdout
	if cfg.LogFormat == "console" {
		f, isFile := stdout.(*os.File)
		out = zerolog.ConsoleWriter{Out: stdout, TimeFormat: time.RFC3339, NoColor: !isFile || !isatty.IsTerminal(f.Fd())}
	}
	return zerolog.New(out).Level(cfg.logLevel).With().Timestamp().Logger()
}

// tracerProvider is the provider of run's spans — the test's, or the SDK's when the OTEL_* variables
// ask for traces, or nil (tracing off) — and what flushes it at the end.
func tracerProvider(ctx context.Context, getenv func(string) string) (trace.TracerProvider, func(context.Context) error, error) {
	none := func(context.Context) error { return nil }
	if tp, ok := ctx.Value(tracerKey{}).(trace.TracerProvider); ok {
		return tp, none, nil
	}
	if !tracing.Enabled(getenv) {
		return nil, none, nil
	}
	sdk, err := tracing.Start(ctx, version)
	if err != nil {
		return nil, none, err
	}
	return sdk, sdk.Shutdown, nil
}
