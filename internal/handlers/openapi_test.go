package handlers

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/go-chi/chi/v5"

	"github.com/optinkit/optin/internal/chat"
	"github.com/optinkit/optin/internal/numberpool"
)

type noChats struct{}

func (noChats) Start(context.Context, chat.StartRequest) (chat.Chat, bool, error) {
	return chat.Chat{}, false, nil
}
func (noChats) Get(context.Context, string) (chat.Chat, error) { return chat.Chat{}, nil }
func (noChats) List(context.Context, chat.State, int, int64) ([]chat.Chat, int64, error) {
	return nil, 0, nil
}
func (noChats) End(context.Context, string) (chat.Chat, error) { return chat.Chat{}, nil }

type noPools struct{}

func (noPools) Usage(context.Context) ([]numberpool.Usage, error) { return nil, nil }

// The document lists exactly the admin routes the router serves.
func TestOpenAPIListsEveryRoute(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(t.Context()); err != nil {
		t.Fatal(err)
	}
	var documented []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented = append(documented, method+" "+path)
		}
	}
	h, err := NewAdminRouter(noChats{}, noPools{}, []string{"token-0123456789abcdef"}, OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	var served []string
	err = chi.Walk(h.(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		served = append(served, method+" "+strings.ReplaceAll(route, "/*", ""))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(documented)
	slices.Sort(served)
	if !slices.Equal(documented, served) {
		t.Errorf("documented %v\nserved     %v", documented, served)
	}
}
