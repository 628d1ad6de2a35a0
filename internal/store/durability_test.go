package store_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/kdfir/kdfir/internal/audit"
	"github.com/kdfir/kdfir/internal/kql/table"
	"github.com/kdfir/kdfir/internal/store"
	"github.com/kdfir/kdfir/internal/testenv"
)

// TestDurability inserts batches in a child process (this test binary,
// run again) that then kills itself (no Close, no checkpoint) and checks
// that every acknowledged batch is in the database when it is opened
// again.
func TestDurability(t *testing.T) {
	if path := os.Getenv("KDFIR_CRASH_DB"); path != "" {
		s, err := store.Open(context.Background(), path, testOpts)
		if err != nil {
			os.Exit(3)
		}
		for i := uint64(0); i < 3; i++ {
			if _, _, err := s.InsertBatch(context.Background(), genEvents(t, 100+i, 2000, audit.Options{Cluster: "c"})); err != nil {
				os.Exit(4)
			}
		}
		os.Stdout.WriteString("acknowledged\n")
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
	path := filepath.Join(t.TempDir(), store.FileName)
	cmd := exec.Command(os.Args[0], "-test.run=^TestDurability$")
	cmd.Env = append(os.Environ(), "KDFIR_CRASH_DB="+path)
	out, err := cmd.Output()
	if string(out) != "acknowledged\n" {
		t.Fatalf("child: %q, %v", out, err)
	}
	if fi, err := os.Stat(path + ".wal"); err == nil {
		t.Logf("WAL left behind: %d bytes", fi.Size())
	}
	// A reader replays the log in memory and leaves it for a writer.
	ro, err := store.Open(ctx, path, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := ro.Count(ctx); n != 6000 {
		t.Errorf("read-only after crash: %d events, want 6000", n)
	}
	ro.Close()
	s, err := store.Open(ctx, path, testOpts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n, _ := s.Count(ctx); n != 6000 {
		t.Errorf("after crash: %d events, want 6000", n)
	}
	// The recovered store still tells duplicates apart.
	if n, d, err := s.InsertBatch(ctx, genEvents(t, 101, 2000, audit.Options{Cluster: "c"})); n != 0 || d != 2000 || err != nil {
		t.Errorf("re-insert after crash: %d new, %d duplicates (%v)", n, d, err)
	}
}

// TestReadersShareTheStore holds the store open in a child process (this
// test binary, run again): beside a reader, another reader opens it and a
// writer is refused; beside a writer, a reader is refused. Each refusal
// is one line that names the holder.
func TestReadersShareTheStore(t *testing.T) {
	testenv.Child("KDFIR_HOLD_DB", func(path string) (func(), error) {
		s, err := store.Open(context.Background(), path, store.Options{ReadOnly: os.Getenv("KDFIR_HOLD_RO") != ""})
		if err != nil {
			return nil, err
		}
		return func() { s.Close() }, nil
	})
	s, path := openTemp(t)
	if _, _, err := s.InsertBatch(ctx, edgeEvents(t)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	hold := func(readOnly bool) (release func()) {
		env := []string{"KDFIR_HOLD_DB=" + path}
		if readOnly {
			env = append(env, "KDFIR_HOLD_RO=1")
		}
		return testenv.StartChild(t, []string{"-test.run=^TestReadersShareTheStore$"}, env...)
	}
	refused := func(what string, opts store.Options) {
		t.Helper()
		s, err := store.Open(ctx, path, opts)
		if err == nil {
			s.Close()
			t.Fatalf("%s opened a store held by another process", what)
		}
		if msg := err.Error(); !strings.Contains(msg, "in use by another process") || !strings.Contains(msg, "PID") || strings.Contains(msg, "\n") {
			t.Errorf("%s: %q, want one line naming the holder", what, msg)
		}
	}

	release := hold(true)
	ro, err := store.Open(ctx, path, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("a second reader: %v", err)
	}
	if n, err := ro.Count(ctx); n != 4 || err != nil {
		t.Errorf("second reader's count: %d (%v), want 4", n, err)
	}
	ro.Close()
	refused("a writer beside a reader", testOpts)
	release()

	release = hold(false)
	refused("a reader beside a writer", store.Options{ReadOnly: true})
	release()
}

// TestConcurrentInserts writes from several goroutines while others scan.
func TestConcurrentInserts(t *testing.T) {
	s, _ := openTemp(t)
	const writers, batches, size = 4, 5, 300
	var wg sync.WaitGroup
	errs := make(chan error, writers*batches+2)
	stop := make(chan struct{})
	src := s.Source(store.SourceOptions{})
	scans := make([]int, 2)
	for r := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				rows, err := src.Scan(ctx, table.ScanRequest{Table: audit.KubeAudit, Filters: []table.Filter{{Column: "verb", Op: table.Eq, Value: "create"}}})
				if err != nil {
					errs <- err
					return
				}
				for rows.Next() {
				}
				if err := rows.Err(); err != nil {
					errs <- err
				}
				rows.Close()
				scans[r]++
			}
		}()
	}
	var ww sync.WaitGroup
	for w := range writers {
		ww.Add(1)
		go func() {
			defer ww.Done()
			for b := range batches {
				evs := genEvents(t, uint64(1000+w*batches+b), size, audit.Options{Cluster: fmt.Sprint("c", w)})
				if n, d, err := s.InsertBatch(ctx, evs); err != nil || n != size || d != 0 {
					errs <- fmt.Errorf("insert: %d new, %d duplicates, %v", n, d, err)
				}
			}
		}()
	}
	ww.Wait()
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n, _ := s.Count(ctx); n != writers*batches*size {
		t.Errorf("%d events, want %d", n, writers*batches*size)
	}
	if scans[0] == 0 || scans[1] == 0 {
		t.Errorf("scans completed during the inserts: %v", scans)
	}
}
