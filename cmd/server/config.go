package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kelseyhightower/envconfig"

	"github.com/optinkit/optin/internal/callback"
	"github.com/optinkit/optin/internal/guard"
	"github.com/optinkit/optin/internal/redisconn"
	"github.com/optinkit/optin/internal/tokens"
	"github.com/rs/zerolog"
)

// config is every setting of the service as the environment gives it. The envconfig tags name the
// variables and their defaults (envconfig prints the help from them); mask says how a value is logged:
// "secret" hides it, "url" hides a URL's user and password.
type config struct {
	AccountSid         string `envconfig:"TWILIO_ACCOUNT_SID" desc:"required (except in demo mode): Twilio account SID (AC…) REST calls are made on"`
	AuthToken          string `envconfig:"TWILIO_AUTH_TOKEN" mask:"secret" desc:"required (except in demo mode): verifies X-Twilio-Signature; authenticates REST calls unless an API key is set"`
	AuthTokenSecondary string `envconfig:"TWILIO_AUTH_TOKEN_SECONDARY" mask:"secret" desc:"also accepted for X-Twilio-Signature while Twilio's secondary token is being promoted"`
	APIKey             string `envconfig:"TWILIO_API_KEY" desc:"optional API key SID (SK…) for REST calls; needs TWILIO_API_SECRET"`
	APISecret          string `envconfig:"TWILIO_API_SECRET" mask:"secret" desc:"secret of TWILIO_API_KEY"`

	Addr              string        `envconfig:"OPTIN_ADDR" default:":8080" desc:"address the HTTP server listens on"`
	PublicURL         string        `envconfig:"OPTIN_PUBLIC_URL" mask:"url" desc:"public base URL Twilio calls (e.g. https://optin.example.com, may carry a path prefix); signatures are checked against it"`
	TrustProxy        bool          `envconfig:"OPTIN_TRUST_PROXY_HEADERS" default:"false" desc:"OPTIN_ADDR is reached only through a proxy that sets X-Forwarded-*: without OPTIN_PUBLIC_URL, take scheme and host from X-Forwarded-Proto and X-Forwarded-Host; know a client of /v1 and /console/ there by the last X-Forwarded-For address. Never applies to OPTIN_ADMIN_ADDR"`
	TwilioAPIURL      string        `envconfig:"OPTIN_TWILIO_API_URL" mask:"url" desc:"replaces scheme and host of every Twilio REST call (emulators, tests); http(s)://host[:port], no path"`
	TwilioTimeout     time.Duration `envconfig:"OPTIN_TWILIO_TIMEOUT" default:"10s" desc:"how long one Twilio REST call may take before it is abandoned and retried (100ms to 2m)"`
	ConversationsSvc  string        `envconfig:"OPTIN_CONVERSATIONS_SERVICE_SID" desc:"Conversation Service (IS…) chats and opt-ins are made in: every Conversations call goes to /v1/Services/{sid}/…; empty: the account's default service (docs/TWILIO.md)"`
	WaitMessage       string        `envconfig:"OPTIN_WAIT_MESSAGE" default:"Great! Just a moment while we connect you…" desc:"system message the customer sees after agreeing"`
	RiderMessage      string        `envconfig:"OPTIN_RIDER_OPTIN_MESSAGE" default:"Your customer has agreed to chat to get this delivery sorted. You're now connected. Say hello!" desc:"body of the rider's opt-in, authored by the customer"`
	RiderContentSid   string        `envconfig:"OPTIN_RIDER_OPTIN_CONTENT_SID" desc:"Content template (HX…) sent to the rider instead of the body; works outside WhatsApp's 24-hour window"`
	RiderContentVar   string        `envconfig:"OPTIN_RIDER_OPTIN_CONTENT_VARIABLES" desc:"JSON object of the template's variables, e.g. {\"1\":\"Ana\"}"`
	LogLevel          string        `envconfig:"OPTIN_LOG_LEVEL" default:"info" desc:"trace, debug, info, warn or error"`
	LogFormat         string        `envconfig:"OPTIN_LOG_FORMAT" default:"json" desc:"json or console"`
	ShutdownTimeout   time.Duration `envconfig:"OPTIN_SHUTDOWN_TIMEOUT" default:"10s" desc:"how long in-flight requests and opt-ins may take to finish on SIGTERM (100ms to 10m)"`
	RedisURL          string        `envconfig:"OPTIN_REDIS_URL" mask:"url" desc:"redis://[:password@]host:port/db (rediss:// for TLS), or redis+sentinel://[:password@]host1:26379,host2:26379/master/db to follow a master through Sentinel, or redis+cluster://host1:6379,host2:6379 for a Redis Cluster: share state and work with other replicas; empty keeps both in this process"`
	RedisWaitReplicas int           `envconfig:"OPTIN_REDIS_WAIT_REPLICAS" default:"0" desc:"replicas that must hold a conversation's claim and its queued work before the webhook is answered, and each run's start before it calls Twilio (Redis WAIT); 0 answers at once: a failover may then lose the last writes (docs/RELIABILITY.md; 0 to 10)"`
	RedisWaitTimeout  time.Duration `envconfig:"OPTIN_REDIS_WAIT_TIMEOUT" default:"500ms" desc:"how long to wait for those replicas before answering 503 (10ms to 5s)"`
	RedisStartupWait  time.Duration `envconfig:"OPTIN_REDIS_STARTUP_WAIT" default:"0s" desc:"how long to wait for Redis at start before failing; 0 fails at once (at most 1h)"`
	Workers           int           `envconfig:"OPTIN_WORKERS" default:"200" desc:"opt-ins (and event deliveries) this replica works on at once; the rest wait their turn, in memory or in Redis (1 to 1000)"`
	FlowRetention     time.Duration `envconfig:"OPTIN_FLOW_RETENTION" default:"720h" desc:"how long a finished conversation is remembered (in Redis or in memory), so later messages stay no-ops (1m to 8760h)"`
	DebugAddr         string        `envconfig:"OPTIN_DEBUG_ADDR" desc:"loopback address (e.g. 127.0.0.1:6060) to serve pprof on; empty serves none"`
	AdminTokens       string        `envconfig:"OPTIN_ADMIN_TOKENS" mask:"secret" desc:"comma-separated bearer tokens of the admin API (/v1) and the console, each at least 32 characters and hard to guess (openssl rand -hex 32); empty turns the API off"`
	AdminAddr         string        `envconfig:"OPTIN_ADMIN_ADDR" desc:"serve the admin API and the console on this address instead of OPTIN_ADDR, so the public ingress exposes only the webhook; /metrics here names the business numbers, on OPTIN_ADDR it sums over them"`
	WhatsAppNumber    string        `envconfig:"OPTIN_WHATSAPP_NUMBER" desc:"a business WhatsApp sender chats are started on (whatsapp:+E164); with OPTIN_WHATSAPP_NUMBERS, the pool is their union"`
	WhatsAppNumbers   string        `envconfig:"OPTIN_WHATSAPP_NUMBERS" desc:"comma-separated business WhatsApp senders (whatsapp:+E164) chats lease numbers from, so a person can be in several chats at once"`
	SMSNumbers        string        `envconfig:"OPTIN_SMS_NUMBERS" desc:"comma-separated business SMS numbers (+E164): parties with an SMS address (+E164) lease theirs from them"`
	SMSRiderMessage   string        `envconfig:"OPTIN_SMS_RIDER_MESSAGE" default:"Your customer has agreed to chat to get this delivery sorted. You're now connected: reply to this number. Say hello!" desc:"the rider's opt-in when the rider is on SMS (no template needed: SMS has no 24-hour window)"`
	InviteContentSid  string        `envconfig:"OPTIN_INVITE_CONTENT_SID" desc:"default invitation template (HX…) of a chat, with variables 1 = customer's name, 2 = rider's"`
	ChatTTL           time.Duration `envconfig:"OPTIN_CHAT_TTL" default:"4h" desc:"a chat's conversation closes after this long without activity, unless the start says otherwise (10m to 720h)"`
	DeclineMessage    string        `envconfig:"OPTIN_DECLINE_MESSAGE" default:"No problem — we won't connect you. Your delivery is on its way." desc:"system message a chat's customer sees after declining (none after an opt-out keyword)"`
	DeclineKeywords   string        `envconfig:"OPTIN_DECLINE_KEYWORDS" desc:"comma-separated replies that decline a chat (whole reply or first word, case, accents and punctuation ignored); empty: built-in English, Spanish, Portuguese, French and German"`
	OptOutKeywords    string        `envconfig:"OPTIN_OPTOUT_KEYWORDS" desc:"comma-separated replies that opt out of every message (STOP and the like); empty: built-in list"`
	CallbackURL       string        `envconfig:"OPTIN_CALLBACK_URL" mask:"url" desc:"receives the chats' events (chat.invited, .connected, .declined, .failed, .closed, .channel_changed, .call_started, .call_ended, .message_after_end), signed as Standard Webhooks say"`
	CallbackSecret    string        `envconfig:"OPTIN_CALLBACK_SECRET" mask:"secret" desc:"signing secret of the events, whsec_ followed by base64; required with OPTIN_CALLBACK_URL"`
	CreateRate        int           `envconfig:"OPTIN_TWILIO_CREATE_RATE" default:"25" desc:"conversation creates per second, across all replicas (Twilio allows about 30 per service; 1 to 1000)"`
	ChatStartTimeout  time.Duration `envconfig:"OPTIN_CHAT_START_TIMEOUT" default:"10s" desc:"how long POST /v1/chats works on a start before answering 503 (repeating the call resumes it; 1s to 60s)"`
	ReconcileEvery    time.Duration `envconfig:"OPTIN_RECONCILE_INTERVAL" default:"5m" desc:"how often open chats are checked against their Twilio conversation (a lost close webhook, an end or start cut off); one replica at a time (1s to 24h)"`
	ReconcileRate     int           `envconfig:"OPTIN_RECONCILE_RATE" default:"10" desc:"conversation reads per second the reconciler makes at most (1 to 1000)"`
	InviteSMSBody     string        `envconfig:"OPTIN_INVITE_SMS_BODY" default:"Hello {{1}}, your delivery is almost there but {{2}} (your rider) needs help finding your door. Are you willing to chat with them? Reply YES or NO." desc:"the invitation, as text, to a customer whose number is not on WhatsApp (63003, 63024) once moved to SMS (OPTIN_SMS_NUMBERS); {{1}} is the customer's name, {{2}} the rider's"`
	HoldMax           time.Duration `envconfig:"OPTIN_HOLD_MAX" default:"24h" desc:"how long a message that could not reach a party (their WhatsApp window closed) is held for them before it is dropped (1m to 720h)"`
	HoldLimit         int           `envconfig:"OPTIN_HOLD_LIMIT" default:"50" desc:"how many messages a party holds at most; beyond it the oldest is dropped and counted (1 to 1000)"`
	HoldLimitBytes    int           `envconfig:"OPTIN_HOLD_LIMIT_BYTES" default:"65536" desc:"how many bytes of held messages a party holds at most; beyond it the oldest is dropped and counted (8192 to 1048576: a whole message of 1,600 characters always fits)"`
	NudgeContentSid   string        `envconfig:"OPTIN_NUDGE_CONTENT_SID" desc:"template (HX…) sent to a party with a closed WhatsApp window and a held message, once per closed window, with variable 1 = the other party's name; empty: messages are held and sent again but nobody is nudged"`
	CallTimeLimit     time.Duration `envconfig:"OPTIN_CALL_TIME_LIMIT" default:"10m" desc:"longest call between a chat's parties through its business numbers (Dial timeLimit; 1s to 4h, Twilio's maximum)"`
	CallUnavailable   string        `envconfig:"OPTIN_CALL_UNAVAILABLE_TEXT" default:"Sorry, this number can only connect you to a delivery chat that is active. Please use the app." desc:"what a caller hears before the call is hung up when the number connects them to nobody: unknown or withheld caller, chat not agreed to or over"`
	CallWhisper       string        `envconfig:"OPTIN_CALL_WHISPER_TEXT" default:"A call about your delivery." desc:"what the called party hears on answering, before the call connects; empty: nothing"`
	Guard             string        `envconfig:"OPTIN_GUARD" default:"redact" desc:"what happens to contact data (numbers, e-mail addresses, contact links) a party types into a chat: redact (each replaced by a placeholder), block (the message is not published; its author is told why), off (docs/GUARD.md; Twilio must send onMessageAdd to /webhooks/conversations: optinctl guard hook)"`
	GuardAllow        string        `envconfig:"OPTIN_GUARD_ALLOW" desc:"comma-separated numbers the guard shows as written (the platform's support line), each international (+44 20 3123 4567)"`
	AfterEndText      string        `envconfig:"OPTIN_AFTER_END_TEXT" default:"This delivery chat has ended. Please use the app to contact us." desc:"answer to a party who writes to their chat's number after the chat ended (POST /webhooks/messaging), at most once per OPTIN_AFTER_END_EVERY"`
	AfterEndEvery     time.Duration `envconfig:"OPTIN_AFTER_END_EVERY" default:"1h" desc:"how often, at most, a party writing after the end is answered and the platform told (chat.message_after_end) (1m to 720h)"`
	NeverChattedText  string        `envconfig:"OPTIN_NEVER_CHATTED_TEXT" desc:"answer to someone who writes to a business number they never had a chat on; empty: nothing is answered"`
	Demo              bool          `envconfig:"OPTIN_DEMO" default:"false" desc:"same as -demo: run against a built-in Twilio emulator with generated credentials and play the guide's story"`
}

// settings is a config that passed validation, with the values run needs already parsed.
type settings struct {
	config
	// publicURL is OPTIN_PUBLIC_URL without user and password: Twilio drops them before signing.
	publicURL *url.URL
	logLevel  zerolog.Level
	// adminTokens is OPTIN_ADMIN_TOKENS split; empty when the admin API is off.
	adminTokens []string
	// whatsAppPool is OPTIN_WHATSAPP_NUMBER and OPTIN_WHATSAPP_NUMBERS, without repeats.
	whatsAppPool []string
	// smsPool is OPTIN_SMS_NUMBERS, without repeats.
	smsPool []string
	// guard is OPTIN_GUARD and OPTIN_GUARD_ALLOW.
	guard guard.Guard
}

// helpWidth is the width the help is wrapped at.
const helpWidth = 100

// settingsHelp is envconfig's template of the help: each variable at the start of a line of its own
// (as deploy's tests read it) with its type unless a string, its description and default indented
// below.
const settingsHelp = `{{range .}}{{usage_key .}}{{if ne (usage_type .) "String"}} ({{usage_type .}}){{end}}
    {{usage_description .}}{{with usage_default .}}
    default: {{.}}{{end}}
{{end}}`

// writeSettings prints every variable of config, as the envconfig tags describe it, wrapped at
// helpWidth columns.
func writeSettings(w io.Writer) error {
	var b strings.Builder
	if err := envconfig.Usagef("", &config{}, &b, settingsHelp); err != nil {
		return err
	}
	const indent = "    "
	var out strings.Builder
	for line := range strings.Lines(b.String()) {
		text := strings.TrimLeft(line, " ")
		for i, part := range wrap(text, helpWidth-len(indent)) {
			if i > 0 || text != line {
				out.WriteString(indent)
			}
			out.WriteString(part + "\n")
		}
	}
	_, err := io.WriteString(w, out.String())
	return err
}

// readConfig fills a config from getenv; each variable that does not parse is named in the error.
func readConfig(getenv func(string) string) (config, error) {
	var c config
	var errs []error
	v := reflect.ValueOf(&c).Elem()
	for i := range v.NumField() {
		f := v.Type().Field(i)
		name := f.Tag.Get("envconfig")
		raw := getenv(name)
		if raw == "" {
			raw = f.Tag.Get("default")
		}
		if err := setField(v.Field(i), raw); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	return c, errors.Join(errs...)
}

// setField parses raw into one of the kinds config uses.
func setField(field reflect.Value, raw string) error {
	if raw == "" {
		return nil
	}
	switch field.Interface().(type) {
	case string:
		field.SetString(raw)
	case bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return fmt.Errorf("want true or false, got %q", raw)
		}
		field.SetBool(b)
	case int:
		n, err := strconv.Atoi(raw)
		if err != nil {
			return fmt.Errorf("want an integer, got %q", raw)
		}
		field.SetInt(int64(n))
	case time.Duration:
		d, err := time.ParseDuration(raw)
		if err != nil {
			return fmt.Errorf("want a duration such as 10s, got %q", raw)
		}
		field.SetInt(int64(d))
	default:
		panic("config: unsupported field type " + field.Type().String())
	}
	return nil
}

// Twilio's SIDs are two letters and 32 hexadecimal digits.
var (
	accountSidRE = regexp.MustCompile(`^AC[0-9a-fA-F]{32}$`)
	apiKeyRE     = regexp.MustCompile(`^SK[0-9a-fA-F]{32}$`)
	contentSidRE = regexp.MustCompile(`^HX[0-9a-fA-F]{32}$`)
	serviceSidRE = regexp.MustCompile(`^IS[0-9a-fA-F]{32}$`)
	whatsAppRE   = regexp.MustCompile(`^whatsapp:\+[1-9][0-9]{6,14}$`)
	smsRE        = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
)

// validate checks c and returns it parsed; it changes nothing, so what it checks is what runs.
func (c config) validate() (settings, error) {
	s := settings{config: c}
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
	}
	between := func(name string, d, lo, hi time.Duration) {
		if d < lo || d > hi {
			bad(name, "must be between %s and %s, got %s", lo, hi, d)
		}
	}
	switch {
	case c.AccountSid == "":
		bad("TWILIO_ACCOUNT_SID", "required")
	case !accountSidRE.MatchString(c.AccountSid):
		bad("TWILIO_ACCOUNT_SID", "must be AC followed by 32 hexadecimal digits")
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
	case c.APIKey != "" && !apiKeyRE.MatchString(c.APIKey):
		bad("TWILIO_API_KEY", "must be SK followed by 32 hexadecimal digits")
	case c.APISecret != "" && !isAlnum(c.APISecret):
		bad("TWILIO_API_SECRET", "must hold only letters and digits")
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			bad("OPTIN_PUBLIC_URL", "want http(s)://host[:port][/prefix], got %q", redactURL(c.PublicURL))
		} else {
			u.User = nil
			s.publicURL = u
		}
	}
	if c.TwilioAPIURL != "" {
		u, err := url.Parse(c.TwilioAPIURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
			strings.Trim(u.Path, "/") != "" || u.RawQuery != "" || u.Fragment != "" {
			bad("OPTIN_TWILIO_API_URL", "want http(s)://host[:port] (only scheme and host are replaced), got %q", redactURL(c.TwilioAPIURL))
		}
	}
	if c.ConversationsSvc != "" && !serviceSidRE.MatchString(c.ConversationsSvc) {
		bad("OPTIN_CONVERSATIONS_SERVICE_SID", "must be a Conversation Service SID: IS followed by 32 hexadecimal digits")
	}
	between("OPTIN_TWILIO_TIMEOUT", c.TwilioTimeout, 100*time.Millisecond, 2*time.Minute)
	if c.WaitMessage == "" {
		bad("OPTIN_WAIT_MESSAGE", "must not be empty")
	}
	// Twilio takes at most 1,600 characters in an SMS body.
	if n := utf8.RuneCountInString(c.InviteSMSBody); strings.TrimSpace(c.InviteSMSBody) == "" || n > 1600-2*64 {
		bad("OPTIN_INVITE_SMS_BODY", "must hold 1 to 1472 characters (1,600 with both names), got %d", n)
	}
	if c.RiderMessage == "" && c.RiderContentSid == "" {
		bad("OPTIN_RIDER_OPTIN_MESSAGE", "must not be empty unless OPTIN_RIDER_OPTIN_CONTENT_SID is set")
	}
	if c.RiderContentSid != "" && !contentSidRE.MatchString(c.RiderContentSid) {
		bad("OPTIN_RIDER_OPTIN_CONTENT_SID", "must be a Content SID: HX followed by 32 hexadecimal digits")
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
	s.logLevel = lvl
	if c.LogFormat != "json" && c.LogFormat != "console" {
		bad("OPTIN_LOG_FORMAT", "want json or console, got %q", c.LogFormat)
	}
	if c.RedisURL != "" {
		if _, err := redisconn.Parse(c.RedisURL); err != nil || strings.Contains(c.RedisURL, "://@") || strings.HasSuffix(c.RedisURL, "://") {
			bad("OPTIN_REDIS_URL", "want redis://[:password@]host:port/db, rediss://…, redis+sentinel://[:password@]host1:26379,host2:26379/master/db (rediss+sentinel:// for TLS), or redis+cluster://host1:6379,host2:6379")
		}
	}
	between("OPTIN_REDIS_STARTUP_WAIT", c.RedisStartupWait, 0, time.Hour)
	between("OPTIN_REDIS_WAIT_TIMEOUT", c.RedisWaitTimeout, 10*time.Millisecond, 5*time.Second)
	if c.RedisWaitReplicas < 0 || c.RedisWaitReplicas > 10 {
		bad("OPTIN_REDIS_WAIT_REPLICAS", "must be between 0 and 10, got %d", c.RedisWaitReplicas)
	} else if c.RedisWaitReplicas > 0 && c.RedisURL == "" {
		bad("OPTIN_REDIS_WAIT_REPLICAS", "needs OPTIN_REDIS_URL")
	}
	if c.Workers < 1 || c.Workers > 1000 {
		bad("OPTIN_WORKERS", "must be between 1 and 1000, got %d", c.Workers)
	}
	between("OPTIN_FLOW_RETENTION", c.FlowRetention, time.Minute, 365*24*time.Hour)
	if c.DebugAddr != "" && !isLoopback(c.DebugAddr) {
		bad("OPTIN_DEBUG_ADDR", "must be a loopback address such as 127.0.0.1:6060")
	}
	between("OPTIN_SHUTDOWN_TIMEOUT", c.ShutdownTimeout, 100*time.Millisecond, 10*time.Minute)
	for t := range strings.SplitSeq(c.AdminTokens, ",") {
		if t = strings.TrimSpace(t); t != "" {
			s.adminTokens = append(s.adminTokens, t)
		}
	}
	for _, t := range s.adminTokens {
		if err := tokens.Check(t); err != nil {
			bad("OPTIN_ADMIN_TOKENS", "%s", err)
			break
		}
	}
	if c.AdminTokens != "" && len(s.adminTokens) == 0 {
		bad("OPTIN_ADMIN_TOKENS", "holds no token")
	}
	between("OPTIN_CHAT_TTL", c.ChatTTL, 10*time.Minute, 720*time.Hour)
	between("OPTIN_CHAT_START_TIMEOUT", c.ChatStartTimeout, time.Second, time.Minute)
	between("OPTIN_RECONCILE_INTERVAL", c.ReconcileEvery, time.Second, 24*time.Hour)
	between("OPTIN_HOLD_MAX", c.HoldMax, time.Minute, 720*time.Hour)
	if c.HoldLimit < 1 || c.HoldLimit > 1000 {
		bad("OPTIN_HOLD_LIMIT", "must be between 1 and 1000, got %d", c.HoldLimit)
	}
	if c.HoldLimitBytes < 8192 || c.HoldLimitBytes > 1<<20 {
		bad("OPTIN_HOLD_LIMIT_BYTES", "must be between 8192 and 1048576, got %d", c.HoldLimitBytes)
	}
	if c.NudgeContentSid != "" && !contentSidRE.MatchString(c.NudgeContentSid) {
		bad("OPTIN_NUDGE_CONTENT_SID", "must be a Content SID: HX followed by 32 hexadecimal digits")
	}
	between("OPTIN_CALL_TIME_LIMIT", c.CallTimeLimit, time.Second, 4*time.Hour)
	if c.CallTimeLimit%time.Second != 0 {
		bad("OPTIN_CALL_TIME_LIMIT", "must be whole seconds, got %s", c.CallTimeLimit)
	}
	// Say reads at most 4,096 characters.
	if n := utf8.RuneCountInString(c.CallUnavailable); strings.TrimSpace(c.CallUnavailable) == "" || n > 4096 {
		bad("OPTIN_CALL_UNAVAILABLE_TEXT", "must hold 1 to 4096 characters, got %d", n)
	}
	if n := utf8.RuneCountInString(c.CallWhisper); n > 4096 {
		bad("OPTIN_CALL_WHISPER_TEXT", "must hold at most 4096 characters, got %d", n)
	}
	if s.guard.Mode, err = guard.ParseMode(c.Guard); err != nil || strings.TrimSpace(c.Guard) == "" {
		bad("OPTIN_GUARD", "want redact, block or off, got %q", c.Guard)
	}
	if s.guard.Allow, err = guard.ParseAllowList(c.GuardAllow); err != nil {
		bad("OPTIN_GUARD_ALLOW", "%v", err)
	}
	// An SMS carries at most 1,600 characters.
	if n := utf8.RuneCountInString(c.AfterEndText); strings.TrimSpace(c.AfterEndText) == "" || n > 1600 {
		bad("OPTIN_AFTER_END_TEXT", "must hold 1 to 1600 characters, got %d", n)
	}
	if n := utf8.RuneCountInString(c.NeverChattedText); n > 1600 {
		bad("OPTIN_NEVER_CHATTED_TEXT", "must hold at most 1600 characters, got %d", n)
	}
	between("OPTIN_AFTER_END_EVERY", c.AfterEndEvery, time.Minute, 720*time.Hour)
	if c.ReconcileRate < 1 || c.ReconcileRate > 1000 {
		bad("OPTIN_RECONCILE_RATE", "must be between 1 and 1000, got %d", c.ReconcileRate)
	}
	if c.CreateRate < 1 || c.CreateRate > 1000 {
		bad("OPTIN_TWILIO_CREATE_RATE", "must be between 1 and 1000, got %d", c.CreateRate)
	}
	if c.InviteContentSid != "" && !contentSidRE.MatchString(c.InviteContentSid) {
		bad("OPTIN_INVITE_CONTENT_SID", "must be a Content SID: HX followed by 32 hexadecimal digits")
	}
	if c.WhatsAppNumber != "" && !whatsAppRE.MatchString(c.WhatsAppNumber) {
		bad("OPTIN_WHATSAPP_NUMBER", "want whatsapp:+E164, e.g. whatsapp:+15550100000")
	} else if c.WhatsAppNumber != "" {
		s.whatsAppPool = append(s.whatsAppPool, c.WhatsAppNumber)
	}
	// numbers adds the numbers of a comma-separated list to pool, each once.
	numbers := func(name, list string, shape *regexp.Regexp, example string, pool *[]string) {
		for n := range strings.SplitSeq(list, ",") {
			switch n = strings.TrimSpace(n); {
			case n == "" || slices.Contains(*pool, n):
			case !shape.MatchString(n):
				bad(name, "want comma-separated %s numbers, got %q", example, n)
			default:
				*pool = append(*pool, n)
			}
		}
	}
	numbers("OPTIN_WHATSAPP_NUMBERS", c.WhatsAppNumbers, whatsAppRE, "whatsapp:+E164", &s.whatsAppPool)
	numbers("OPTIN_SMS_NUMBERS", c.SMSNumbers, smsRE, "+E164", &s.smsPool)
	if c.CallbackURL != "" {
		u, err := url.Parse(c.CallbackURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("OPTIN_CALLBACK_URL", "want http(s)://host[:port]/path, got %q", redactURL(c.CallbackURL))
		}
		if len(s.adminTokens) == 0 {
			bad("OPTIN_CALLBACK_URL", "needs OPTIN_ADMIN_TOKENS: events are about chats started through the API")
		}
		if err := callback.CheckSecret(c.CallbackSecret); err != nil {
			bad("OPTIN_CALLBACK_SECRET", "%v", err)
		}
	} else if c.CallbackSecret != "" {
		bad("OPTIN_CALLBACK_SECRET", "needs OPTIN_CALLBACK_URL")
	}
	if len(s.adminTokens) > 0 {
		if len(s.whatsAppPool) == 0 {
			bad("OPTIN_WHATSAPP_NUMBERS", "required with OPTIN_ADMIN_TOKENS (or OPTIN_WHATSAPP_NUMBER): the business numbers chats are started on")
		}
		if c.PublicURL == "" && !c.Demo {
			bad("OPTIN_PUBLIC_URL", "required with OPTIN_ADMIN_TOKENS: chats arm their webhook at it")
		}
	} else if c.AdminAddr != "" {
		bad("OPTIN_ADMIN_ADDR", "needs OPTIN_ADMIN_TOKENS")
	}
	return s, errors.Join(errs...)
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

// MarshalZerologObject logs the effective configuration, each value as its mask tag says.
func (c config) MarshalZerologObject(e *zerolog.Event) {
	v := reflect.ValueOf(c)
	for i := range v.NumField() {
		f := v.Type().Field(i)
		val := fmt.Sprint(v.Field(i).Interface())
		switch f.Tag.Get("mask") {
		case "secret":
			val = mask(val)
		case "url":
			val = redactURL(val)
		}
		e.Str(f.Tag.Get("envconfig"), val)
	}
}

// redactURL hides the user and password of a URL such as redis://:secret@host:6379/0; a value that
// does not parse as a URL is hidden whole.
func redactURL(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		return mask(raw)
	}
	if u.User != nil {
		u.User = url.User("xxxxx")
	}
	return u.String()
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
