package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/kdfir/kdfir/internal/store"
)

// openEventStore opens the event store in the data directory as it is,
// without moving a legacy store's events into it. It returns the data
// directory too.
func (g *Globals) openEventStore(ctx context.Context) (*store.Store, string, error) {
	dir, err := g.dataDir()
	if err != nil {
		return nil, "", err
	}
	opts := store.Options{}
	if g.MemoryLimit != "" {
		if opts.MemoryLimit, err = store.ParseMemoryLimit(g.MemoryLimit); err != nil {
			return nil, "", usagef("invalid --memory-limit: %v", err)
		}
	}
	st, err := store.Open(ctx, filepath.Join(dir, store.FileName), opts)
	if err != nil {
		return nil, "", err
	}
	return st, dir, nil
}

// migrateLegacy moves the events of an earlier version's SQLite store
// (DATA_DIR/events.db) into st, if there is one that was not moved yet,
// showing its progress on stderr.
func (g *Globals) migrateLegacy(ctx context.Context, st *store.Store, dir string) error {
	ms, err := g.runMigration(ctx, st, dir)
	if errors.Is(err, store.ErrNoLegacy) {
		return nil
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(g.Stderr, migrateSummary(ms))
	return nil
}

// runMigration migrates DATA_DIR/events.db into st with a progress line
// on stderr: a live one on a terminal, otherwise one line every 10%.
func (g *Globals) runMigration(ctx context.Context, st *store.Store, dir string) (store.MigrateStats, error) {
	legacy := filepath.Join(dir, store.LegacyFileName)
	p := newMigrateProgress(g.Stderr, store.LegacyFileName)
	ms, err := st.MigrateLegacy(ctx, legacy, store.MigrateOptions{Progress: p.update})
	p.stop()
	switch {
	case err == nil, errors.Is(err, store.ErrNoLegacy):
		return ms, err
	case ctx.Err() != nil:
		return ms, fmt.Errorf("%w; the migration resumes where it stopped on the next kdfir command", err)
	default:
		return ms, fmt.Errorf("%w (the file is left as it was; kdfir needs its events moved, or the file moved out of %s)", err, dir)
	}
}

func migrateSummary(ms store.MigrateStats) string {
	s := fmt.Sprintf("migrated %d events from %s to the event store in %s (%d new, %d already stored)",
		ms.Events, filepath.Base(ms.Source), ms.Duration.Round(100*time.Millisecond), ms.Stored, ms.Duplicates)
	if ms.Resumed {
		s += ", resuming an earlier run"
	}
	return s + "; the old file is now " + ms.RenamedTo
}

// migrateProgress draws the migration's progress.
type migrateProgress struct {
	w       io.Writer
	name    string
	tty     bool
	decile  int64 // the last 10% step logged, when not a terminal
	drawn   time.Time
	started bool
}

func newMigrateProgress(w io.Writer, name string) *migrateProgress {
	p := &migrateProgress{w: w, name: name, decile: -1}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.tty = true
	}
	return p
}

func (p *migrateProgress) update(done, total int64) {
	pct := int64(100)
	if total > 0 {
		pct = done * 100 / total
	}
	line := fmt.Sprintf("migrating %s: %d/%d (%d%%)", p.name, done, total, pct)
	if p.tty {
		if now := time.Now(); done == total || now.Sub(p.drawn) >= 100*time.Millisecond {
			fmt.Fprintf(p.w, "\r\033[K%s", line)
			p.drawn, p.started = now, true
		}
		return
	}
	if d := pct / 10; d > p.decile {
		p.decile = d
		fmt.Fprintln(p.w, line)
	}
}

func (p *migrateProgress) stop() {
	if p.tty && p.started {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

// migrateReport is the output of kdfir store migrate.
type migrateReport struct {
	Migrated bool `json:"migrated"` // false when there was nothing to migrate
	store.MigrateStats
}

func newStoreCmd(g *Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "store",
		Short: "Inspect and maintain the event store (events.duckdb in the data directory)",
		Args:  cobra.NoArgs, // with RunE, so that an unknown subcommand is a usage error
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "migrate",
		Short: "Move the events of an earlier version's SQLite store (events.db) into the event store",
		Long: "Move the events of the SQLite store of earlier kdfir versions (DATA_DIR/events.db) into the\n" +
			"DuckDB event store (DATA_DIR/events.duckdb). Every command that opens the store does this by\n" +
			"itself; this command does it explicitly. The migration is resumable: when it is interrupted,\n" +
			"running it again continues where it stopped, without losing or duplicating events. When it\n" +
			"is done, events.db is renamed events.db.migrated (and kept).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			st, dir, err := g.openEventStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			ms, err := g.runMigration(ctx, st, dir)
			if errors.Is(err, store.ErrNoLegacy) {
				rep := migrateReport{MigrateStats: store.MigrateStats{Source: ms.Source}}
				return render(g.Stdout, g.Output, rep, func(w io.Writer) {
					msg := "nothing to migrate: there is no " + ms.Source
					if prev, ok, err := st.LegacyMigration(ctx); err == nil && ok {
						msg += fmt.Sprintf(" (%s was migrated on %s: %d events, now in %s)",
							filepath.Base(prev.Source), prev.Completed.Format(time.RFC3339), prev.Events, prev.RenamedTo)
					}
					fmt.Fprintln(w, msg)
				})
			}
			if err != nil {
				return err
			}
			return render(g.Stdout, g.Output, migrateReport{Migrated: true, MigrateStats: ms}, func(w io.Writer) {
				fmt.Fprintln(w, migrateSummary(ms))
			})
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "stats",
		Short: "Count the stored events (by cluster, over time) and show what they take on disk",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := g.openStoreReading(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			s, err := st.Stats(cmd.Context())
			if err != nil {
				return err
			}
			return render(g.Stdout, g.Output, s, func(w io.Writer) { statsTable(w, s) })
		},
	})
	return cmd
}

func statsTable(w io.Writer, s store.Stats) {
	ts := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.Format(time.RFC3339Nano)
	}
	fmt.Fprintf(w, "STORE\t%s\n", s.Path)
	fmt.Fprintf(w, "EVENTS\t%d\n", s.Events)
	fmt.Fprintf(w, "WITHOUT TIME\t%d\n", s.Untimed)
	fmt.Fprintf(w, "OLDEST\t%s\n", ts(s.Oldest))
	fmt.Fprintf(w, "NEWEST\t%s\n", ts(s.Newest))
	fmt.Fprintf(w, "ON DISK\t%s (database %s, write-ahead log %s)\n", humanBytes(s.DiskBytes), humanBytes(s.FileBytes), humanBytes(s.WALBytes))
	fmt.Fprintf(w, "UNCOMPRESSED\t%s\n", humanBytes(s.DataBytes))
	ratio := "-"
	if s.Ratio > 0 {
		ratio = fmt.Sprintf("%.1fx", s.Ratio)
	}
	fmt.Fprintf(w, "COMPRESSION\t%s\n", ratio)
	if len(s.Clusters) == 0 {
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "CLUSTER\tEVENTS")
	for _, c := range s.Clusters {
		name := c.Name
		if name == "" {
			name = "(none)"
		}
		fmt.Fprintf(w, "%s\t%d\n", name, c.Events)
	}
}

// humanBytes renders a size in binary units: 512 B, 1.5 KiB, 25.3 MiB.
func humanBytes(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	f := float64(n)
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB"}
	i := -1
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	s := fmt.Sprintf("%.1f", f)
	return strings.TrimSuffix(s, ".0") + " " + units[i]
}
