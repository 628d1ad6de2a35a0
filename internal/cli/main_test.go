package cli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"testing"

	"github.com/kdfir/kdfir/internal/store"
	"github.com/kdfir/kdfir/internal/testenv"
)

// holdStoreEnv names the event store that a re-executed child of
// holdStore keeps open, read-only, until its stdin closes.
const holdStoreEnv = "KDFIR_TEST_HOLD_STORE"

// TestMain shares one control plane among the package's tests that need a
// cluster.
func TestMain(m *testing.M) {
	if path := os.Getenv(holdStoreEnv); path != "" {
		s, err := store.Open(context.Background(), path, store.Options{ReadOnly: true})
		if err != nil {
			fmt.Println(err)
			os.Exit(3)
		}
		fmt.Println("open")
		io.Copy(io.Discard, os.Stdin) //nolint:errcheck // held until the parent closes stdin
		s.Close()
		os.Exit(0)
	}
	os.Exit(testenv.Main(m, testenv.Options{}))
}

// holdStore opens the store at path read-only in another process (this
// test binary, run again) and returns a func that closes it.
func holdStore(t *testing.T, path string) (release func()) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), holdStoreEnv+"="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if line, _ := bufio.NewReader(stdout).ReadString('\n'); line != "open\n" {
		cmd.Wait() //nolint:errcheck // the line says why
		t.Fatalf("the holding process did not open the store: %q", line)
	}
	return func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("the holding process: %v", err)
		}
	}
}
