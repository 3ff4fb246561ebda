package emulator

import (
	"cmp"
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// The /emulator routes of calls: a phone placing a call, hanging up, a replayed action, how a phone
// answers, and the calls so far.

// form reads the named fields of a form or a JSON object, whichever the request carries; a form
// field may also come in lower case.
func form(w http.ResponseWriter, r *http.Request, names ...string) (map[string]string, bool) {
	out := map[string]string{}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		var in map[string]any
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&in); err != nil {
			return nil, false
		}
		for _, n := range names {
			for _, k := range []string{n, strings.ToLower(n)} {
				switch v := in[k].(type) {
				case string:
					out[n] = v
				case float64: // a duration field given as seconds
					if strings.HasSuffix(n, "_for") {
						out[n] = time.Duration(v * float64(time.Second)).String()
					}
				}
			}
		}
		return out, true
	}
	if err := r.ParseForm(); err != nil {
		return nil, false
	}
	for _, n := range names {
		out[n] = cmp.Or(r.PostForm.Get(n), r.PostForm.Get(strings.ToLower(n)))
	}
	return out, true
}

// handlePlaceCall is a phone calling a business number: From, To.
func (e *Emulator) handlePlaceCall(w http.ResponseWriter, r *http.Request) {
	in, ok := form(w, r, "From", "To")
	if !ok {
		writeAPIError(w, badParam("calls: malformed body"))
		return
	}
	if in["From"] == "" || in["To"] == "" {
		writeAPIError(w, badParam("calls: From and To are required"))
		return
	}
	c, err := e.Call(in["From"], in["To"])
	if err != nil {
		writeCallError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, c)
}

// handleCalls lists the calls, or those a number placed or was rung with (?number=).
func (e *Emulator) handleCalls(w http.ResponseWriter, r *http.Request) {
	calls := e.Calls()
	if n := r.URL.Query().Get("number"); n != "" {
		want := normalizeNumber(n)
		var mine []Call
		for _, c := range calls {
			rung := false
			for _, d := range c.Dials {
				rung = rung || normalizeNumber(d.To) == want
			}
			if c.From == want || c.To == want || rung {
				mine = append(mine, c)
			}
		}
		calls = mine
	}
	if calls == nil {
		calls = []Call{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"calls": calls})
}

func (e *Emulator) handleCall(w http.ResponseWriter, r *http.Request) {
	c, ok := e.CallByID(r.PathValue("sid"))
	if !ok {
		writeCallError(w, ErrNoCall)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

// handleHangup ends a call early: party=caller or callee.
func (e *Emulator) handleHangup(w http.ResponseWriter, r *http.Request) {
	in, ok := form(w, r, "Party")
	if !ok {
		writeAPIError(w, badParam("hangup: malformed body"))
		return
	}
	c, err := e.Hangup(r.PathValue("sid"), in["Party"])
	if err != nil {
		writeCallError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

func (e *Emulator) handleReplayAction(w http.ResponseWriter, r *http.Request) {
	call, err := e.ReplayDialAction(r.PathValue("sid"))
	if err != nil {
		writeCallError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"webhook_call": call})
}

// handleSetPhone says how the phone at {number} answers calls: a JSON Phone, or a form with answer,
// ring_for, talk_for (durations such as 5s) and profile_name.
func (e *Emulator) handleSetPhone(w http.ResponseWriter, r *http.Request) {
	in, ok := form(w, r, "answer", "ring_for", "talk_for", "profile_name")
	if !ok {
		writeAPIError(w, badParam("phones: malformed body"))
		return
	}
	p := Phone{Answer: in["answer"], ProfileName: in["profile_name"]}
	for _, d := range []struct {
		name string
		dst  *Duration
	}{{"ring_for", &p.RingFor}, {"talk_for", &p.TalkFor}} {
		if in[d.name] == "" {
			continue
		}
		v, err := time.ParseDuration(in[d.name])
		if err != nil {
			writeAPIError(w, badParam("phones: "+d.name+" must be a duration such as 5s"))
			return
		}
		*d.dst = Duration(v)
	}
	if err := e.SetPhone(r.PathValue("number"), p); err != nil {
		writeAPIError(w, badParam(err.Error()))
		return
	}
	writeJSON(w, http.StatusOK, p)
}
