package store_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"github.com/kdfir/kdfir/internal/audit"
	"github.com/kdfir/kdfir/internal/kql/table"
	"github.com/kdfir/kdfir/internal/store"
)

// TestDurability inserts batches in a child process that then kills
// itself (no Close, no checkpoint) and checks that every acknowledged
// batch is in the database when it is opened again.
func TestDurability(t *testing.T) {
	if path := os.Getenv("KDFIR_CRASH_DB"); path != "" {
		s, err := store.Open(context.Background(), path)
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
	path := filepath.Join(t.TempDir(), "crash.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestDurability$")
	cmd.Env = append(os.Environ(), "KDFIR_CRASH_DB="+path)
	out, err := cmd.Output()
	if string(out) != "acknowledged\n" {
		t.Fatalf("child: %q, %v", out, err)
	}
	if _, err := os.Stat(path + "-wal"); err != nil {
		t.Logf("no WAL left behind: %v", err)
	}
	s, err := store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n, _ := s.Count(ctx); n != 6000 {
		t.Errorf("after crash: %d events, want 6000", n)
	}
}

// TestConcurrentInserts writes from several goroutines while others scan.
func TestConcurrentInserts(t *testing.T) {
	s, _ := openTemp(t)
	const writers, batches, size = 4, 5, 300
	var wg sync.WaitGroup
	errs := make(chan error, writers*batches+2)
	stop := make(chan struct{})
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				rows, err := s.Scan(ctx, table.ScanRequest{Table: audit.KubeAudit, Filters: []table.Filter{{Column: "verb", Op: table.Eq, Value: "create"}}})
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
			}
		}()
	}
	var ww sync.WaitGroup
	for w := 0; w < writers; w++ {
		ww.Add(1)
		go func(w int) {
			defer ww.Done()
			for b := 0; b < batches; b++ {
				evs := genEvents(t, uint64(1000+w*batches+b), size, audit.Options{Cluster: "c"})
				if n, d, err := s.InsertBatch(ctx, evs); err != nil || n != size || d != 0 {
					errs <- fmt.Errorf("insert: %d new, %d duplicates, %v", n, d, err)
				}
			}
		}(w)
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
}
