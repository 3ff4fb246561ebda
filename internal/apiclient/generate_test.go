package apiclient

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// The committed client is what the generator makes of the document as it is now.
func TestClientIsGeneratedFromTheDocument(t *testing.T) {
	out := filepath.Join(t.TempDir(), "client.gen.go")
	cmd := exec.Command("go", "tool", "oapi-codegen", "-config", "oapi-codegen.yaml", "-o", out, "../handlers/openapi.json")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("oapi-codegen: %v\n%s", err, b)
	}
	want, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("client.gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Error("client.gen.go is stale: run go generate ./internal/apiclient")
	}
}
