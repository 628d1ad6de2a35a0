package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// KubeVersion is the version of the Kubernetes binaries the harness runs.
const KubeVersion = "v1.32.4"

// ToolsDir is where `make tools` puts the binaries: $KDFIR_TOOLS_DIR, or
// $XDG_CACHE_HOME/kdfir/tools (~/.cache/kdfir/tools).
func ToolsDir() string {
	if d := os.Getenv("KDFIR_TOOLS_DIR"); d != "" {
		return d
	}
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		home, _ := os.UserHomeDir()
		base = filepath.Join(home, ".cache")
	}
	return filepath.Join(base, "kdfir", "tools")
}

// binary finds a tool in the tools directory, then on PATH.
func binary(name string) (string, error) {
	candidates := []string{
		filepath.Join(ToolsDir(), "k8s-"+KubeVersion, name),
		filepath.Join(ToolsDir(), "bin", name),
		filepath.Join(ToolsDir(), "azurite", "node_modules", ".bin", name),
	}
	for _, c := range candidates {
		if fi, err := os.Stat(c); err == nil && !fi.IsDir() {
			return c, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s not found in %s or on PATH: run `make tools`", name, ToolsDir())
}
