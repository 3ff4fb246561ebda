package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/optinkit/optin/internal/handlers"
)

// apiDoc is the admin API's OpenAPI document, loaded and checked once.
var apiDoc = sync.OnceValues(func() (routers.Router, error) {
	doc, err := openapi3.NewLoader().LoadFromData(handlers.OpenAPI)
	if err != nil {
		return nil, err
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, err
	}
	return gorillamux.NewRouter(doc)
})

// checkAgainstOpenAPI fails t unless the answer to req — and req itself, when it was accepted — is what
// the OpenAPI document says.
func checkAgainstOpenAPI(t testing.TB, req *http.Request, reqBody string, resp *http.Response, respBody []byte) {
	t.Helper()
	router, err := apiDoc()
	if err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	check := req.Clone(context.Background())
	check.Body = io.NopCloser(bytes.NewReader([]byte(reqBody)))
	route, params, err := router.FindRoute(check)
	if err != nil {
		t.Errorf("%s %s: not in openapi.json: %v", req.Method, req.URL.Path, err)
		return
	}
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true}
	in := &openapi3filter.RequestValidationInput{Request: check, PathParams: params, Route: route, Options: opts}
	if resp.StatusCode < 300 {
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
			t.Errorf("accepted request %s %s is not what openapi.json allows: %v", req.Method, req.URL.Path, err)
		}
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
		Body: io.NopCloser(bytes.NewReader(respBody)), Options: opts}
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		t.Errorf("answer %d to %s %s is not what openapi.json says: %v", resp.StatusCode, req.Method, req.URL.Path, err)
	}
}
