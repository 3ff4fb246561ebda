package twilioapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/twilio/twilio-go/client"

	"github.com/optinkit/optin/internal/chat"
	"github.com/optinkit/optin/internal/twiliocall"
)

// Media lives in Twilio's Media Content Service, which twilio-go does not cover: a file is uploaded
// as the raw body of a POST to /v1/Services/{ChatServiceSid}/Media and read back from
// …/Media/{MediaSid}/Content. A media SID goes with one message only (50508), so a message sent
// again needs a copy of its media.

// mcsURL is the Media Content Service's base; Options.BaseURL replaces its host like the API's.
const mcsURL = "https://mcs.us1.twilio.com/v1"

// maxMediaSize is WhatsApp's largest media, 16 MB: a larger file is not copied.
const maxMediaSize = 16 << 20

// maxMediaRedirects bounds the redirects a content read follows (to where the file is kept).
const maxMediaRedirects = 3

var errMediaTooLarge = fmt.Errorf("media larger than WhatsApp's %d MB", maxMediaSize>>20)

// CopyMedia uploads a copy of m's content as new media of the conversation's Conversation Service and
// returns the copy's SID, for a message that carries m again. Media over 16 MB is refused, permanently.
func (c *Client) CopyMedia(ctx context.Context, conversationSid string, m chat.Media) (string, error) {
	if m.Size > maxMediaSize {
		return "", &twiliocall.CallError{Op: "copy media", Kind: twiliocall.Permanent, Err: errMediaTooLarge}
	}
	svc, rec := c.service(ctx, "fetch_conversation")
	conv, err := svc.FetchConversation(seg(conversationSid))
	if err != nil {
		return "", classify("fetch conversation", err, rec)
	}
	service := deref(conv.ChatServiceSid)
	data, contentType, err := c.mediaContent(ctx, service, m.Sid)
	if err != nil {
		return "", err
	}
	if m.ContentType != "" {
		contentType = m.ContentType
	}
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	return c.uploadMedia(ctx, service, contentType, data)
}

// mediaContent reads a media's bytes, at most maxMediaSize, and their type.
func (c *Client) mediaContent(ctx context.Context, service, mediaSid string) ([]byte, string, error) {
	const op = "read media"
	req, err := http.NewRequest(http.MethodGet, mcsURL+"/Services/"+seg(service)+"/Media/"+seg(mediaSid)+"/Content", nil)
	if err != nil {
		return nil, "", &twiliocall.CallError{Op: op, Kind: twiliocall.Permanent, Err: err}
	}
	resp, rec, err := c.mcs(ctx, "read_media", req, maxMediaRedirects)
	if err != nil {
		return nil, "", classify(op, err, rec)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxMediaSize+1))
	if err != nil {
		return nil, "", classify(op, err, rec)
	}
	if len(data) > maxMediaSize {
		return nil, "", &twiliocall.CallError{Op: op, Kind: twiliocall.Permanent, Status: rec.status, Err: errMediaTooLarge}
	}
	return data, resp.Header.Get("Content-Type"), nil
}

// uploadMedia stores data as new media of the service and returns its SID.
func (c *Client) uploadMedia(ctx context.Context, service, contentType string, data []byte) (string, error) {
	const op = "upload media"
	req, err := http.NewRequest(http.MethodPost, mcsURL+"/Services/"+seg(service)+"/Media", bytes.NewReader(data))
	if err != nil {
		return "", &twiliocall.CallError{Op: op, Kind: twiliocall.Permanent, Err: err}
	}
	req.Header.Set("Content-Type", contentType)
	resp, rec, err := c.mcs(ctx, "create_media", req, 0)
	if err != nil {
		return "", classify(op, err, rec)
	}
	defer resp.Body.Close()
	var created struct {
		Sid string `json:"sid"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxErrorBody)).Decode(&created); err != nil || created.Sid == "" {
		// The upload took effect; its answer was lost.
		return "", classify(op, fmt.Errorf("reading the created media: %v", err), rec)
	}
	return created.Sid, nil
}

// mcs sends one request to the Media Content Service with the client's credentials, through the same
// transport as the API's calls (context, BaseURL, observation, tracing). An error answer comes back
// as twilio-go's *client.TwilioRestError, so classify reads it as it reads the API's.
func (c *Client) mcs(ctx context.Context, operation string, req *http.Request, redirects int) (*http.Response, *call, error) {
	rec := &call{}
	hc := &http.Client{
		Transport: &callTransport{ctx: ctx, base: c.base, next: c.transport, rec: rec, op: operation, observe: c.opts.Observe, tracer: c.opts.Tracer},
		CheckRedirect: func(_ *http.Request, via []*http.Request) error {
			if len(via) > redirects {
				return http.ErrUseLastResponse
			}
			return nil // net/http drops the credentials when a redirect leaves the host
		},
	}
	req.SetBasicAuth(c.opts.Username, c.opts.Password)
	resp, err := hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, rec, err
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		restErr := &client.TwilioRestError{}
		if json.Unmarshal(body, restErr) != nil || restErr.Status == 0 {
			restErr = &client.TwilioRestError{Status: resp.StatusCode, Message: http.StatusText(resp.StatusCode)}
		}
		return nil, rec, restErr
	}
	return resp, rec, nil
}
