package handlers

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// lintDir holds the linter and Ajv with their lock file, installed by
// `npm ci --prefix internal/handlers/testdata/node` (.ci/run does it).
const lintDir = "testdata/node"

// needNode finds node and the installed packages. Outside CI their absence skips the test, saying what
// to install; in CI (CI=true) it fails it.
func needNode(t *testing.T) string {
	t.Helper()
	missing := func(what string) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s; CI lints the OpenAPI document with it", what)
		}
		t.Skipf("%s: linting the OpenAPI document needs it (CI runs it)", what)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node is not installed (Node 20 or later)")
	}
	for _, pkg := range []string{"@redocly/cli", "ajv", "ajv-formats"} {
		if _, err := os.Stat(filepath.Join(lintDir, "node_modules", pkg, "package.json")); err != nil {
			missing(pkg + " is not installed: run npm ci --prefix internal/handlers/testdata/node")
		}
	}
	return node
}

// Redocly's linter finds nothing in the document, its recommended rules strict (every warning an
// error), and Ajv compiles every schema in it, as the validators of node servers do.
func TestOpenAPIPassesTheLinter(t *testing.T) {
	node := needNode(t)
	doc, err := filepath.Abs("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"node_modules/@redocly/cli/bin/cli.js", "lint", "--config", "redocly.yaml", "--format", "stylish", doc},
		{"schemas.js", doc},
	} {
		cmd := exec.CommandContext(t.Context(), node, args...)
		cmd.Dir = lintDir
		cmd.Env = append(os.Environ(), "REDOCLY_TELEMETRY=off", "REDOCLY_SUPPRESS_UPDATE_NOTICE=true", "NO_COLOR=1")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Errorf("node %s: %v\n%s", args[0], err, out.String())
		}
	}
}
