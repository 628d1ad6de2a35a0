package audittest

import (
	"os"
	"path/filepath"
	"testing"
)

// DataDir returns the third-party fixture directory (shared/data beside
// the repository, or $KDFIR_TESTDATA), skipping the test when absent.
func DataDir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("KDFIR_TESTDATA"); d != "" {
		return d
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Skip(err)
	}
	for {
		for _, c := range []string{filepath.Join(dir, "shared", "data"), filepath.Join(dir, "..", "shared", "data")} {
			if fi, err := os.Stat(filepath.Join(c, "falco-k8s-audit")); err == nil && fi.IsDir() {
				return c
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Skip("fixture directory shared/data not found; set KDFIR_TESTDATA")
		}
		dir = parent
	}
}

// Files returns the .json files of a fixture folder.
func Files(t testing.TB, folder string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(DataDir(t), folder, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures in %s: %v", folder, err)
	}
	return files
}
