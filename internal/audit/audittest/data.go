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
	d, ok := FindDataDir()
	if !ok {
		t.Skip("fixture directory shared/data not found; set KDFIR_TESTDATA")
	}
	return d
}

// FindDataDir looks for the third-party fixture directory: $KDFIR_TESTDATA,
// or shared/data in the working directory or one of its parents, or beside
// one of them.
func FindDataDir() (string, bool) {
	if d := os.Getenv("KDFIR_TESTDATA"); d != "" {
		return d, true
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", false
	}
	for {
		for _, c := range []string{filepath.Join(dir, "shared", "data"), filepath.Join(dir, "..", "shared", "data")} {
			if fi, err := os.Stat(filepath.Join(c, "falco-k8s-audit")); err == nil && fi.IsDir() {
				return c, true
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
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
