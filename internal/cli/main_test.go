package cli

import (
	"context"
	"os"
	"testing"

	"github.com/kdfir/kdfir/internal/store"
	"github.com/kdfir/kdfir/internal/testenv"
)

// holdStoreEnv names the event store that a re-executed child of
// holdStore keeps open, read-only, until told to finish.
const holdStoreEnv = "KDFIR_TEST_HOLD_STORE"

// TestMain shares one control plane among the package's tests that need a
// cluster.
func TestMain(m *testing.M) {
	testenv.Child(holdStoreEnv, func(path string) (func(), error) {
		s, err := store.Open(context.Background(), path, store.Options{ReadOnly: true})
		if err != nil {
			return nil, err
		}
		return func() { s.Close() }, nil
	})
	os.Exit(testenv.Main(m, testenv.Options{}))
}

// holdStore opens the store at path read-only in another process (this
// test binary, run again) and returns a func that closes it.
func holdStore(t *testing.T, path string) (release func()) {
	t.Helper()
	return testenv.StartChild(t, nil, holdStoreEnv+"="+path)
}
