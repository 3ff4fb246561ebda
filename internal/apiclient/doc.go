// Package apiclient is a Go client of the chats API generated from its OpenAPI document by
// oapi-codegen, as a platform would generate one: its tests keep the document usable by generators.
// Its Event is the body of the events the service posts (the document's webhooks). Regenerate with
// go generate after changing internal/handlers/openapi.json.
package apiclient

//go:generate go tool oapi-codegen -config oapi-codegen.yaml -o client.gen.go ../handlers/openapi.json
