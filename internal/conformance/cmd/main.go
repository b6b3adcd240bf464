// Command cmd writes the conformance vectors to testdata/conformance/ (or
// the directory given as its argument), and the TypeScript and Python
// verifiers' case-folding tables: `go run ./internal/conformance/cmd`, from
// the repository's root.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/continuoustrust/vault-plugin-secrets-agent/internal/conformance"
)

func main() {
	dir := "testdata/conformance"
	if len(os.Args) > 1 {
		dir = os.Args[1]
	}
	files, err := conformance.Generate()
	if err != nil {
		fmt.Fprintln(os.Stderr, "conformance:", err)
		os.Exit(1)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "conformance:", err)
		os.Exit(1)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "conformance:", err)
			os.Exit(1)
		}
		fmt.Printf("wrote %s (%d bytes)\n", filepath.Join(dir, name), len(b))
	}
	// The verifiers' case-folding tables, from the repository's root.
	for path, b := range conformance.CaseFoldSources() {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "conformance:", err)
			os.Exit(1)
		}
		fmt.Printf("wrote %s (%d bytes)\n", path, len(b))
	}
}
