package cli

import (
	"os"
	"testing"

	"github.com/kdfir/kdfir/internal/testenv"
)

// TestMain shares one control plane among the package's tests that need a
// cluster.
func TestMain(m *testing.M) { os.Exit(testenv.Main(m, testenv.Options{})) }
