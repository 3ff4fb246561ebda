package twiliocall

import "testing"

// A marker is the same bytes for the same fields (the opt-in's and the chat's, as written before
// there was one helper), and is found by any subset of its fields, never by another value.
func TestMarker(t *testing.T) {
	if got, want := Marker(map[string]string{"trigger": "IM1", "step": "rider"}), `{"optin":{"step":"rider","trigger":"IM1"}}`; got != want {
		t.Errorf("opt-in marker %s, want %s", got, want)
	}
	chat := Marker(map[string]string{"chat": "order-1", "resend": "IM2"})
	if want := `{"optin":{"chat":"order-1","resend":"IM2"}}`; chat != want {
		t.Errorf("chat marker %s, want %s", chat, want)
	}
	for _, tt := range []struct {
		attrs  string
		fields map[string]string
		want   bool
	}{
		{chat, map[string]string{"chat": "order-1", "resend": "IM2"}, true},
		{chat, map[string]string{"resend": "IM2"}, true},
		{chat, map[string]string{"resend": "IM3"}, false},
		{chat, map[string]string{"chat": "order-1", "notice": "g1"}, false},
		{`{"optin":{"chat":1}}`, map[string]string{"chat": "1"}, false},
		{`{}`, map[string]string{"chat": "order-1"}, false},
		{`not json`, map[string]string{"chat": "order-1"}, false},
	} {
		if got := HasMarker(tt.attrs, tt.fields); got != tt.want {
			t.Errorf("HasMarker(%s, %v) = %v, want %v", tt.attrs, tt.fields, got, tt.want)
		}
	}
}
