// Package apiclient is a Go client of the chats API generated from its OpenAPI document by
// oapi-codegen, as a platform would generate one: its tests keep the document usable by generators.
// Regenerate with go generate after changing internal/handlers/openapi.json.
package apiclient

//go:generate go tool oapi-codegen -package apiclient -generate client,types -o client.gen.go ../handlers/openapi.json
