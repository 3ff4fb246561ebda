package handlers

import _ "embed"

// OpenAPI is the admin API's OpenAPI document, served at /v1/openapi.json.
//
//go:embed openapi.json
var OpenAPI []byte
