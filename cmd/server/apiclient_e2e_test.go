package main

import (
	"context"
	"net/http"
	"testing"

	"github.com/optinkit/optin/internal/apiclient"
)

// A client generated from the OpenAPI document (as a platform would make one) starts, reads, lists
// and ends a chat on the real server, and reads a refusal as the document says.
func TestGeneratedClient(t *testing.T) {
	s, _ := startAPI(t, nil)
	bearer := func(_ context.Context, r *http.Request) error {
		r.Header.Set("Authorization", "Bearer "+adminToken1)
		return nil
	}
	c, err := apiclient.NewClientWithResponses(s.base, apiclient.WithRequestEditorFn(bearer))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	name := "Ana"
	meta := map[string]any{"order": 8812}
	started, err := c.StartChatWithResponse(ctx, apiclient.StartRequest{Id: "order-8812",
		Customer: apiclient.PartyRequest{Address: customer, Name: &name}, Rider: apiclient.PartyRequest{Address: rider}, Metadata: &meta})
	if err != nil || started.JSON201 == nil || started.JSON201.State != "invited" || (*started.JSON201.Metadata)["order"] != 8812.0 {
		t.Fatalf("start: %v %s", err, started.Body)
	}
	got, err := c.GetChatWithResponse(ctx, "order-8812")
	if err != nil || got.JSON200 == nil || got.JSON200.ConversationSid == nil || *got.JSON200.Customer.Name != "Ana" {
		t.Fatalf("get: %v %s", err, got.Body)
	}
	state := apiclient.State("invited")
	list, err := c.ListChatsWithResponse(ctx, &apiclient.ListChatsParams{State: &state})
	if err != nil || list.JSON200 == nil || len(list.JSON200.Chats) != 1 || list.JSON200.NextCursor != nil {
		t.Fatalf("list: %v %s", err, list.Body)
	}
	ended, err := c.EndChatWithResponse(ctx, "order-8812")
	if err != nil || ended.JSON200 == nil || ended.JSON200.State != "closed" || ended.JSON200.Reason == nil || *ended.JSON200.Reason != "ended" {
		t.Fatalf("end: %v %s", err, ended.Body)
	}
	missing, err := c.GetChatWithResponse(ctx, "order-0")
	if err != nil || missing.ApplicationproblemJSON404 == nil || missing.ApplicationproblemJSON404.Status != 404 {
		t.Fatalf("unknown chat: %v %s", err, missing.Body)
	}
}
