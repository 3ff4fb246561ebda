package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"
	"github.com/rs/zerolog"
)

// config is every setting of the service, read once from the environment.
type config struct {
	AccountSid         string `envconfig:"TWILIO_ACCOUNT_SID" desc:"required (except in demo mode): Twilio account SID (AC…) REST calls are made on"`
	AuthToken          string `envconfig:"TWILIO_AUTH_TOKEN" desc:"required (except in demo mode): verifies X-Twilio-Signature; authenticates REST calls unless an API key is set"`
	AuthTokenSecondary string `envconfig:"TWILIO_AUTH_TOKEN_SECONDARY" desc:"also accepted for X-Twilio-Signature while Twilio's secondary token is being promoted"`
	APIKey             string `envconfig:"TWILIO_API_KEY" desc:"optional API key SID (SK…) for REST calls; needs TWILIO_API_SECRET"`
	APISecret          string `envconfig:"TWILIO_API_SECRET" desc:"secret of TWILIO_API_KEY"`

	Addr             string        `envconfig:"OPTIN_ADDR" default:":8080" desc:"address the HTTP server listens on"`
	PublicURL        string        `envconfig:"OPTIN_PUBLIC_URL" desc:"public base URL Twilio calls (e.g. https://optin.example.com, may carry a path prefix); signatures are checked against it"`
	TrustProxy       bool          `envconfig:"OPTIN_TRUST_PROXY_HEADERS" default:"false" desc:"without OPTIN_PUBLIC_URL, take scheme and host from X-Forwarded-Proto and X-Forwarded-Host"`
	TwilioAPIURL     string        `envconfig:"OPTIN_TWILIO_API_URL" desc:"replaces scheme and host of every Twilio REST call (emulators, tests); the path is kept"`
	TwilioTimeout    time.Duration `envconfig:"OPTIN_TWILIO_TIMEOUT" default:"10s" desc:"how long one Twilio REST call may take before it is abandoned and retried"`
	WaitMessage      string        `envconfig:"OPTIN_WAIT_MESSAGE" default:"Great! Just a moment while we connect you…" desc:"system message the customer sees after agreeing"`
	RiderMessage     string        `envconfig:"OPTIN_RIDER_OPTIN_MESSAGE" default:"Your customer has agreed to chat over WhatsApp to get this delivery sorted. You're now connected. Say hello!" desc:"body of the rider's opt-in, authored by the customer"`
	RiderContentSid  string        `envconfig:"OPTIN_RIDER_OPTIN_CONTENT_SID" desc:"Content template (HX…) sent to the rider instead of the body; works outside WhatsApp's 24-hour window"`
	RiderContentVar  string        `envconfig:"OPTIN_RIDER_OPTIN_CONTENT_VARIABLES" desc:"JSON object of the template's variables, e.g. {\"1\":\"Ana\"}"`
	LogLevel         string        `envconfig:"OPTIN_LOG_LEVEL" default:"info" desc:"trace, debug, info, warn or error"`
	LogFormat        string        `envconfig:"OPTIN_LOG_FORMAT" default:"json" desc:"json or console"`
	ShutdownTimeout  time.Duration `envconfig:"OPTIN_SHUTDOWN_TIMEOUT" default:"10s" desc:"how long in-flight requests and opt-ins may take to finish on SIGTERM"`
	RedisURL         string        `envconfig:"OPTIN_REDIS_URL" desc:"redis://[:password@]host:port/db (rediss:// for TLS): share state and work with other replicas; empty keeps both in this process"`
	RedisStartupWait time.Duration `envconfig:"OPTIN_REDIS_STARTUP_WAIT" default:"0s" desc:"how long to wait for Redis at start before failing; 0 fails at once"`
	Workers          int           `envconfig:"OPTIN_WORKERS" default:"10" desc:"opt-ins this replica works on at once (with Redis)"`
	FlowRetention    time.Duration `envconfig:"OPTIN_FLOW_RETENTION" default:"720h" desc:"how long a finished conversation is remembered (in Redis or in memory), so later messages stay no-ops"`
	DebugAddr        string        `envconfig:"OPTIN_DEBUG_ADDR" desc:"loopback address (e.g. 127.0.0.1:6060) to serve pprof on; empty serves none"`
	Demo             bool          `envconfig:"OPTIN_DEMO" default:"false" desc:"same as -demo: run against a built-in Twilio emulator with generated credentials and play the guide's story"`

	publicURL *url.URL
	logLevel  zerolog.Level
}

// readConfig reads the environment; check validates what it read. Each error names the variable at fault.
func readConfig() (config, error) {
	var c config
	err := envconfig.Process("", &c)
	return c, err
}

func (c *config) check() error {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
	}
	if c.AccountSid == "" {
		bad("TWILIO_ACCOUNT_SID", "required")
	} else if !strings.HasPrefix(c.AccountSid, "AC") || !isAlnum(c.AccountSid) {
		bad("TWILIO_ACCOUNT_SID", "must start with AC and hold only letters and digits")
	}
	if c.AuthToken == "" {
		bad("TWILIO_AUTH_TOKEN", "required")
	} else if !isAlnum(c.AuthToken) {
		bad("TWILIO_AUTH_TOKEN", "must hold only letters and digits")
	}
	if c.AuthTokenSecondary != "" && !isAlnum(c.AuthTokenSecondary) {
		bad("TWILIO_AUTH_TOKEN_SECONDARY", "must hold only letters and digits")
	}
	switch {
	case (c.APIKey == "") != (c.APISecret == ""):
		bad("TWILIO_API_KEY", "TWILIO_API_KEY and TWILIO_API_SECRET go together")
	case c.APIKey != "" && (!strings.HasPrefix(c.APIKey, "SK") || !isAlnum(c.APIKey)):
		bad("TWILIO_API_KEY", "must start with SK and hold only letters and digits")
	case c.APISecret != "" && !isAlnum(c.APISecret):
		bad("TWILIO_API_SECRET", "must hold only letters and digits")
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			bad("OPTIN_PUBLIC_URL", "want http(s)://host[:port][/prefix], got %q", c.PublicURL)
		} else {
			c.publicURL = u
		}
	}
	if c.TwilioAPIURL != "" {
		u, err := url.Parse(c.TwilioAPIURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("OPTIN_TWILIO_API_URL", "want http(s)://host[:port], got %q", c.TwilioAPIURL)
		}
	}
	if c.TwilioTimeout <= 0 {
		bad("OPTIN_TWILIO_TIMEOUT", "must be positive")
	}
	if c.WaitMessage == "" {
		bad("OPTIN_WAIT_MESSAGE", "must not be empty")
	}
	if c.RiderMessage == "" && c.RiderContentSid == "" {
		bad("OPTIN_RIDER_OPTIN_MESSAGE", "must not be empty unless OPTIN_RIDER_OPTIN_CONTENT_SID is set")
	}
	if c.RiderContentSid != "" && (!strings.HasPrefix(c.RiderContentSid, "HX") || !isAlnum(c.RiderContentSid)) {
		bad("OPTIN_RIDER_OPTIN_CONTENT_SID", "must be a Content SID (HX…)")
	}
	if c.RiderContentVar != "" {
		var obj map[string]any
		if c.RiderContentSid == "" {
			bad("OPTIN_RIDER_OPTIN_CONTENT_VARIABLES", "needs OPTIN_RIDER_OPTIN_CONTENT_SID")
		} else if json.Unmarshal([]byte(c.RiderContentVar), &obj) != nil || obj == nil {
			bad("OPTIN_RIDER_OPTIN_CONTENT_VARIABLES", "must be a JSON object")
		}
	}
	lvl, err := zerolog.ParseLevel(c.LogLevel)
	if err != nil || c.LogLevel == "" {
		bad("OPTIN_LOG_LEVEL", "unknown level %q", c.LogLevel)
	}
	c.logLevel = lvl
	if c.LogFormat != "json" && c.LogFormat != "console" {
		bad("OPTIN_LOG_FORMAT", "want json or console, got %q", c.LogFormat)
	}
	if c.RedisURL != "" {
		u, err := url.Parse(c.RedisURL)
		if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
			bad("OPTIN_REDIS_URL", "want redis://[:password@]host:port/db or rediss://…")
		}
	}
	if c.RedisStartupWait < 0 {
		bad("OPTIN_REDIS_STARTUP_WAIT", "must not be negative")
	}
	if c.Workers <= 0 {
		bad("OPTIN_WORKERS", "must be positive")
	}
	if c.FlowRetention <= 0 {
		bad("OPTIN_FLOW_RETENTION", "must be positive")
	}
	if c.DebugAddr != "" && !isLoopback(c.DebugAddr) {
		bad("OPTIN_DEBUG_ADDR", "must be a loopback address such as 127.0.0.1:6060")
	}
	if c.ShutdownTimeout <= 0 {
		bad("OPTIN_SHUTDOWN_TIMEOUT", "must be positive")
	}
	return errors.Join(errs...)
}

func isAlnum(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9') {
			return false
		}
	}
	return true
}

// MarshalZerologObject logs the effective configuration with every secret masked.
func (c config) MarshalZerologObject(e *zerolog.Event) {
	e.Str("TWILIO_ACCOUNT_SID", c.AccountSid).
		Str("TWILIO_AUTH_TOKEN", mask(c.AuthToken)).
		Str("TWILIO_AUTH_TOKEN_SECONDARY", mask(c.AuthTokenSecondary)).
		Str("TWILIO_API_KEY", c.APIKey).
		Str("TWILIO_API_SECRET", mask(c.APISecret)).
		Str("OPTIN_ADDR", c.Addr).
		Str("OPTIN_PUBLIC_URL", c.PublicURL).
		Bool("OPTIN_TRUST_PROXY_HEADERS", c.TrustProxy).
		Str("OPTIN_TWILIO_API_URL", c.TwilioAPIURL).
		Str("OPTIN_TWILIO_TIMEOUT", c.TwilioTimeout.String()).
		Str("OPTIN_WAIT_MESSAGE", c.WaitMessage).
		Str("OPTIN_RIDER_OPTIN_MESSAGE", c.RiderMessage).
		Str("OPTIN_RIDER_OPTIN_CONTENT_SID", c.RiderContentSid).
		Str("OPTIN_RIDER_OPTIN_CONTENT_VARIABLES", c.RiderContentVar).
		Str("OPTIN_LOG_LEVEL", c.LogLevel).
		Str("OPTIN_LOG_FORMAT", c.LogFormat).
		Str("OPTIN_SHUTDOWN_TIMEOUT", c.ShutdownTimeout.String()).
		Str("OPTIN_REDIS_URL", maskURL(c.RedisURL)).
		Str("OPTIN_REDIS_STARTUP_WAIT", c.RedisStartupWait.String()).
		Int("OPTIN_WORKERS", c.Workers).
		Str("OPTIN_FLOW_RETENTION", c.FlowRetention.String()).
		Str("OPTIN_DEBUG_ADDR", c.DebugAddr).
		Bool("OPTIN_DEMO", c.Demo)
}

// maskURL hides the password of a URL such as redis://:secret@host:6379/0.
func maskURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return mask(raw)
	}
	return u.Redacted()
}

func mask(secret string) string {
	if secret == "" {
		return ""
	}
	return "********"
}

// restCredentials picks the API key when one is configured.
func (c config) restCredentials() (user, pass string) {
	if c.APIKey != "" {
		return c.APIKey, c.APISecret
	}
	return c.AccountSid, c.AuthToken
}
