package emulator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Fault makes matching REST calls slow or failing.
type Fault struct {
	// Route is an operation such as "messages.create" or "webhooks.delete", or "*" for all.
	Route string `json:"route"`
	// Kind is the failure: an HTTP status such as "500", "503" or "429", or "drop" to close the
	// connection unanswered. Empty means latency only.
	Kind string `json:"kind,omitempty"`
	// Code is the Twilio error code answered with Kind's status, e.g. 50416 with "409" or 63016 with
	// "400"; 0 means 20000 + the status (20429, 20503, …).
	Code int `json:"code,omitempty"`
	// Rate fails this share of matching calls (0 to 1); Nth fails every nth one. Neither: every call.
	Rate float64 `json:"rate,omitempty"`
	Nth  int     `json:"nth,omitempty"`
	// Count stops the fault after this many hits; 0 means no limit.
	Count int `json:"count,omitempty"`
	// Latency delays each hit call before it is handled.
	Latency Duration `json:"latency,omitempty"`
	// Applied performs the call before the latency and the failure: the client cannot tell whether it
	// took effect (with latency alone: a call that succeeds after the client gave up).
	Applied bool `json:"applied,omitempty"`
	// RetryAfter, in seconds, is sent with a 429.
	RetryAfter int `json:"retry_after,omitempty"`
}

// Duration is a time.Duration written as "250ms" in JSON.
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"250ms\": %w", err)
	}
	v, err := time.ParseDuration(s)
	*d = Duration(v)
	return err
}

type faultState struct {
	Fault
	calls, hits int
}

func (f Fault) validate() error {
	if f.Route == "" {
		return fmt.Errorf("fault without route")
	}
	if f.Kind != "" && f.Kind != "drop" {
		if n, err := strconv.Atoi(f.Kind); err != nil || n < 400 || n > 599 {
			return fmt.Errorf("fault kind %q: want drop or an HTTP status 400-599", f.Kind)
		}
	}
	if f.Code != 0 {
		if _, err := strconv.Atoi(f.Kind); err != nil {
			return fmt.Errorf("fault code %d without an HTTP status kind", f.Code)
		}
		if f.Code < 10000 || f.Code > 99999 {
			return fmt.Errorf("fault code %d: want a Twilio error code of five digits", f.Code)
		}
	}
	if f.Rate < 0 || f.Rate > 1 {
		return fmt.Errorf("fault rate %v: want 0 to 1", f.Rate)
	}
	return nil
}

// SetFaults replaces the active faults.
func (e *Emulator) SetFaults(faults []Fault) error {
	for _, f := range faults {
		if err := f.validate(); err != nil {
			return err
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.faults = e.faults[:0]
	for _, f := range faults {
		e.faults = append(e.faults, &faultState{Fault: f})
	}
	return nil
}

// Faults returns the active faults.
func (e *Emulator) Faults() []Fault {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Fault, 0, len(e.faults))
	for _, f := range e.faults {
		out = append(out, f.Fault)
	}
	return out
}

// FaultHits counts the calls faults have hit so far.
func (e *Emulator) FaultHits() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, f := range e.faults {
		n += f.hits
	}
	return n
}

// pickFault counts the call against every matching fault and returns the first that hits.
func (e *Emulator) pickFault(route string) *Fault {
	e.mu.Lock()
	defer e.mu.Unlock()
	var hit *Fault
	for _, f := range e.faults {
		if f.Route != route && f.Route != "*" {
			continue
		}
		if f.Count > 0 && f.hits >= f.Count {
			continue
		}
		f.calls++
		var fires bool
		switch {
		case f.Nth > 0:
			fires = f.calls%f.Nth == 0
		case f.Rate > 0:
			fires = e.rng.Float64() < f.Rate
		default:
			fires = true
		}
		if fires && hit == nil {
			f.hits++
			fault := f.Fault
			hit = &fault
		}
	}
	return hit
}

func (f *Fault) fail(w http.ResponseWriter) {
	if f.Kind == "drop" {
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			_ = conn.Close()
		}
		return
	}
	status, _ := strconv.Atoi(f.Kind)
	if status == http.StatusTooManyRequests && f.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(f.RetryAfter))
	}
	code := f.Code
	if code == 0 {
		code = 20000 + status
	}
	writeAPIError(w, apiError{status, code, http.StatusText(status) + " (injected)"})
}

func (e *Emulator) handleGetFaults(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"faults": e.Faults()})
}

func (e *Emulator) handleSetFaults(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Faults []Fault `json:"faults"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		writeAPIError(w, badParam("faults: "+err.Error()))
		return
	}
	if err := e.SetFaults(body.Faults); err != nil {
		writeAPIError(w, badParam(err.Error()))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"faults": e.Faults()})
}

func (e *Emulator) handleClearFaults(w http.ResponseWriter, _ *http.Request) {
	_ = e.SetFaults(nil)
	w.WriteHeader(http.StatusNoContent)
}
