// Command emulator runs the Twilio Conversations emulator on its own, for tests and local play:
// the REST API under /v1 (and the phone numbers under /2010-04-01) and the phones, calls,
// transcripts, clock and faults under /emulator.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/optinkit/optin/emulator"
)

type config struct {
	Addr       string `envconfig:"EMULATOR_ADDR" default:"127.0.0.1:8081" desc:"listen address"`
	AccountSid string `envconfig:"EMULATOR_ACCOUNT_SID" desc:"account SID the API accepts; generated when empty"`
	AuthToken  string `envconfig:"EMULATOR_AUTH_TOKEN" desc:"auth token the API accepts and webhooks are signed with; generated (and printed) when empty"`
	APIKey     string `envconfig:"EMULATOR_API_KEY" desc:"optional API key SID also accepted"`
	APISecret  string `envconfig:"EMULATOR_API_SECRET" desc:"secret of EMULATOR_API_KEY"`
	Contents   string `envconfig:"EMULATOR_CONTENTS" desc:"JSON object of Content SIDs to template text, e.g. {\"HX…\":\"Hello {{1}}\"}"`
	Faults     string `envconfig:"EMULATOR_FAULTS" desc:"JSON array of faults, e.g. [{\"route\":\"messages.create\",\"kind\":\"503\",\"rate\":0.2}]"`
	Seed       uint64 `envconfig:"EMULATOR_SEED" default:"1" desc:"seed of rate-based faults"`
	Numbers    string `envconfig:"EMULATOR_NUMBERS" desc:"JSON array of the account's phone numbers, e.g. [{\"number\":\"+15550000000\",\"voice_url\":\"http://127.0.0.1:8080/webhooks/voice\",\"sms_url\":\"…\"}]"`
	Phones     string `envconfig:"EMULATOR_PHONES" desc:"JSON object of how phones answer calls, e.g. {\"+15550001111\":{\"answer\":\"busy\"}} (answer, ring_for, talk_for, profile_name)"`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "emulator:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("emulator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stdout, "Usage: emulator\n\nRuns the Twilio Conversations emulator. Configuration comes from the environment:\n\n")
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		_ = envconfig.Usagef("", &config{}, tw, envconfig.DefaultTableFormat)
		_ = tw.Flush()
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	var cfg config
	if err := envconfig.Process("", &cfg); err != nil {
		return err
	}
	opts := emulator.Options{AccountSid: cfg.AccountSid, AuthToken: cfg.AuthToken, APIKey: cfg.APIKey, APISecret: cfg.APISecret, Seed: cfg.Seed}
	if cfg.Contents != "" {
		if err := json.Unmarshal([]byte(cfg.Contents), &opts.Contents); err != nil {
			return fmt.Errorf("EMULATOR_CONTENTS: %w", err)
		}
	}
	if cfg.Faults != "" {
		if err := json.Unmarshal([]byte(cfg.Faults), &opts.Faults); err != nil {
			return fmt.Errorf("EMULATOR_FAULTS: %w", err)
		}
	}
	if cfg.Numbers != "" {
		if err := json.Unmarshal([]byte(cfg.Numbers), &opts.Numbers); err != nil {
			return fmt.Errorf("EMULATOR_NUMBERS: %w", err)
		}
	}
	if cfg.Phones != "" {
		if err := json.Unmarshal([]byte(cfg.Phones), &opts.Phones); err != nil {
			return fmt.Errorf("EMULATOR_PHONES: %w", err)
		}
		for _, p := range opts.Phones {
			if err := p.Validate(); err != nil {
				return fmt.Errorf("EMULATOR_PHONES: %w", err)
			}
		}
	}
	generated := false
	if opts.AccountSid == "" || opts.AuthToken == "" {
		sid, token := emulator.NewCredentials()
		if opts.AccountSid == "" {
			opts.AccountSid = sid
		}
		if opts.AuthToken == "" {
			opts.AuthToken, generated = token, true
		}
	}
	emu, err := emulator.New(opts)
	if err != nil {
		return fmt.Errorf("EMULATOR_FAULTS: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("EMULATOR_ADDR: %w", err)
	}
	srv := &http.Server{Handler: emu, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()

	fmt.Fprintf(stdout, "Twilio Conversations emulator listening on http://%s\n", ln.Addr())
	fmt.Fprintf(stdout, "  account SID: %s\n", opts.AccountSid)
	if generated {
		fmt.Fprintf(stdout, "  auth token:  %s (generated)\n", opts.AuthToken)
	}
	fmt.Fprintf(stdout, "  point a client at it with OPTIN_TWILIO_API_URL=http://%s\n", ln.Addr())
	fmt.Fprintf(stdout, "  media (mcs.us1.twilio.com at Twilio) is under /v1/Services/IS%s/Media\n", opts.AccountSid[min(2, len(opts.AccountSid)):])

	<-ctx.Done()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	return emu.Close(shutdownCtx)
}
