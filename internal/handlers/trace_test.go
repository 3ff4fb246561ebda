package handlers

import (
	"net/http"
	"testing"
)

type plain struct{}

func (*plain) ServeHTTP(http.ResponseWriter, *http.Request) {}

// Off, tracing adds nothing to a handler: the refusal path is the one it was.
func TestTracedOffIsTheHandlerItself(t *testing.T) {
	h := &plain{}
	if got, ok := Traced(nil, h).(*plain); !ok || got != h {
		t.Fatal("Traced(nil, h) wraps h")
	}
}
