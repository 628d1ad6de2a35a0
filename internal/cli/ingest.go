package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/kdfir/kdfir/internal/alert"
	"github.com/kdfir/kdfir/internal/audit"
	"github.com/kdfir/kdfir/internal/cluster"
	"github.com/kdfir/kdfir/internal/config"
	"github.com/kdfir/kdfir/internal/detect"
	"github.com/kdfir/kdfir/internal/store"
)

// openStore opens the event store in the data directory, moving the
// events of an earlier version's store into it first.
func (g *Globals) openStore(ctx context.Context) (*store.Store, error) {
	return g.openStoreWith(ctx, store.Options{})
}

// openStoreReading opens the event store for a command that only reads
// it (hunt, store stats): read-only, so that any number of them can run
// at once (a writer, kdfir ingest or serve, still has the store to
// itself). A store yet to be made, or with an earlier version's store to
// move in, is opened as openStore opens it.
func (g *Globals) openStoreReading(ctx context.Context) (*store.Store, error) {
	dir, err := g.dataDir()
	if err != nil {
		return nil, err
	}
	_, noStore := os.Stat(filepath.Join(dir, store.FileName))
	_, noLegacy := os.Stat(filepath.Join(dir, store.LegacyFileName))
	return g.openStoreWith(ctx, store.Options{ReadOnly: noStore == nil && noLegacy != nil})
}

// ingestMemoryLimit is the store's memory limit for kdfir ingest unless
// --memory-limit is given: appending needs little, and what DuckDB caches
// of the blocks it writes is of no use to the ingest.
const ingestMemoryLimit = "256MiB"

// openStoreWith is openStore with options; --memory-limit overrides
// opts.MemoryLimit ("" for the store's own default). A read-only store
// is not migrated.
func (g *Globals) openStoreWith(ctx context.Context, opts store.Options) (*store.Store, error) {
	dir, err := g.dataDir()
	if err != nil {
		return nil, err
	}
	if g.MemoryLimit != "" {
		if opts.MemoryLimit, err = store.ParseMemoryLimit(g.MemoryLimit); err != nil {
			return nil, usagef("invalid --memory-limit: %v", err)
		}
	}
	st, err := store.Open(ctx, filepath.Join(dir, store.FileName), opts)
	if err != nil || opts.ReadOnly {
		return st, err
	}
	if err := g.migrateLegacy(ctx, st, dir); err != nil {
		st.Close()
		return nil, err
	}
	return st, nil
}

// ingestHeapLimit is the soft limit of the Go heap during an ingest (unless
// GOMEMLIMIT says otherwise): the garbage collector works a little harder
// and kdfir's memory stays flat whatever the size of the input.
const ingestHeapLimit = 384 << 20

func limitGoHeap() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(ingestHeapLimit)
	}
}

type ingestReport struct {
	File       string          `json:"file"`
	Read       int             `json:"read"`
	Stored     int             `json:"stored"`
	Duplicates int             `json:"duplicates"`
	Rejected   int             `json:"rejected"`
	Skipped    int             `json:"skipped"`
	Problems   []audit.Problem `json:"problems,omitempty"`
	Alerts     int             `json:"alerts"`
	Seconds    float64         `json:"seconds"`
}

func newIngestCmd(g *Globals) *cobra.Command {
	var resourceID, retention string
	var noDetect bool
	var rulePaths, exceptionFiles []string
	cmd := &cobra.Command{
		Use:   "ingest FILE... ",
		Short: "Store audit events from files (or - for stdin) and run near-real-time rules on them",
		Long: "Store Kubernetes audit events in the data directory's event store. The input shape is detected:\n" +
			"audit.k8s.io Event JSON lines, EventList JSON, Azure diagnostic export records (kube-audit,\n" +
			"kube-audit-admin; one per line or in a records array), and AKSAudit or CloudAuditEvents rows.\n" +
			"Re-ingesting the same events adds nothing. Malformed lines are reported and never stop the ingest.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			limitGoHeap()
			var keep time.Duration
			if retention != "" {
				d, err := config.ParseDuration(retention)
				if err != nil || d <= 0 {
					return usagef("invalid --retention %q: want e.g. 30d or 720h", retention)
				}
				keep = d
			}
			for _, f := range args {
				if f == "-" {
					continue
				}
				if _, err := os.Stat(f); err != nil {
					return fmt.Errorf("ingest: %w", err)
				}
			}
			opts := audit.Options{Cluster: g.Cluster, ClusterResourceID: resourceID}
			if g.Cluster != "" && resourceID == "" {
				if f, err := cluster.LoadFile(g.clustersFile()); err == nil {
					if c, ok := f.Find(g.Cluster); ok {
						opts.Cluster, opts.ClusterResourceID = c.Name, c.ResourceID
					}
				}
			}
			st, err := g.openStoreWith(ctx, store.Options{MemoryLimit: ingestMemoryLimit})
			if err != nil {
				return err
			}
			defer st.Close()
			var engine *detect.Engine
			var alerts *alertSink
			if !noDetect {
				rules, err := loadRules(rulePaths, true, exceptionFiles)
				if err != nil {
					return err
				}
				as, err := g.openAlerts(ctx)
				if err != nil {
					return err
				}
				defer as.Close()
				alerts = &alertSink{add: as.Add}
				engine = &detect.Engine{Rules: rules, Sink: alerts, State: as, Log: g.Log}
			}
			var reports []ingestReport
			failed := false
			for _, f := range args {
				rep, err := ingestFile(ctx, g, st, f, opts, engine, alerts)
				if err != nil {
					return err
				}
				if rep.Rejected > 0 {
					failed = true
				}
				reports = append(reports, rep)
			}
			if keep > 0 {
				n, err := st.DeleteBefore(ctx, time.Now().Add(-keep))
				if err != nil {
					return fmt.Errorf("retention: %w", err)
				}
				g.Log.Info("retention applied", "deleted", n, "older than", retention)
			}
			err = render(g.Stdout, g.Output, reports, func(w io.Writer) {
				fmt.Fprintln(w, "FILE\tREAD\tSTORED\tDUPLICATES\tREJECTED\tSKIPPED\tALERTS\tEVENTS/S")
				for _, r := range reports {
					rate := 0.0
					if r.Seconds > 0 {
						rate = float64(r.Read) / r.Seconds
					}
					fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%.0f\n", r.File, r.Read, r.Stored, r.Duplicates, r.Rejected, r.Skipped, r.Alerts, rate)
				}
			})
			if err != nil {
				return err
			}
			for _, r := range reports {
				for _, p := range r.Problems {
					kind := "rejected"
					if p.Skipped {
						kind = "skipped"
					}
					fmt.Fprintf(g.Stderr, "%s:%d: %s: %s\n", r.File, p.Line, kind, p.Reason)
				}
			}
			if failed {
				return exitError{code: ExitFailure, msg: "some input lines were rejected (listed above)"}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&resourceID, "cluster-resource-id", "", "the cluster's Azure ResourceId (or EKS ARN, GKE name) to tag events with")
	cmd.Flags().StringVar(&retention, "retention", "", "after ingesting, delete events older than this (e.g. 30d)")
	cmd.Flags().BoolVar(&noDetect, "no-detect", false, "do not run near-real-time rules on the ingested events")
	cmd.Flags().StringSliceVar(&rulePaths, "rules", nil, "rule files or directories to run besides the built-in pack")
	cmd.Flags().StringSliceVar(&exceptionFiles, "exceptions", nil, "exceptions files: rule exceptions, and rules to enable or disable")
	return cmd
}

// loadRules loads the built-in pack (unless builtin is false) and the rules
// at paths, and applies the exceptions files.
func loadRules(paths []string, builtin bool, exceptions []string) ([]*detect.Rule, error) {
	var rules []*detect.Rule
	if builtin {
		b, err := detect.Builtin(nil)
		if err != nil {
			return nil, err
		}
		rules = b
	}
	if len(paths) > 0 {
		more, err := detect.LoadPaths(paths, nil)
		if err != nil {
			return nil, err
		}
		rules = append(rules, more...)
	}
	return rules, applyExceptions(rules, exceptions)
}

// applyExceptions applies exceptions files to the rules, in order.
func applyExceptions(rules []*detect.Rule, files []string) error {
	for _, f := range files {
		t, err := detect.LoadTuning(f)
		if err != nil {
			return err
		}
		if err := t.Apply(rules); err != nil {
			return err
		}
	}
	return nil
}

type alertSink struct {
	add func(context.Context, *alert.Alert) error
	n   atomic.Int64
}

func (s *alertSink) Raise(ctx context.Context, a *alert.Alert) error {
	s.n.Add(1)
	return s.add(ctx, a)
}

func ingestFile(ctx context.Context, g *Globals, st *store.Store, name string, opts audit.Options, engine *detect.Engine, alerts *alertSink) (ingestReport, error) {
	var r io.Reader = os.Stdin
	var size int64
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return ingestReport{}, fmt.Errorf("ingest: %w", err)
		}
		defer f.Close()
		if fi, err := f.Stat(); err == nil {
			size = fi.Size()
		}
		r = f
	}
	cr := &countingReader{r: r}
	stop := startProgress(g.Stderr, name, cr, size)
	start := time.Now()
	var before int64
	if alerts != nil {
		before = alerts.n.Load()
	}
	stats, err := st.Ingest(ctx, cr, opts, func(batch []audit.Event) error {
		if engine == nil {
			return nil
		}
		_, err := engine.OnBatch(ctx, batch)
		return err
	})
	stop()
	if err != nil {
		return ingestReport{}, fmt.Errorf("ingest %s: %w", name, err)
	}
	rep := ingestReport{File: name, Read: stats.Events, Stored: stats.Stored, Duplicates: stats.Duplicates,
		Rejected: stats.Rejected, Skipped: stats.Skipped, Problems: stats.Problems, Seconds: time.Since(start).Seconds()}
	if alerts != nil {
		rep.Alerts = int(alerts.n.Load() - before)
	}
	return rep, nil
}

type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// startProgress draws a progress bar on stderr while a large file is read,
// when stderr is a terminal. It returns a function that stops it.
func startProgress(w io.Writer, name string, cr *countingReader, size int64) func() {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) || size < 16<<20 {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				fmt.Fprintf(w, "\r\033[K")
				return
			case <-t.C:
				n := cr.n.Load()
				pct := float64(n) / float64(size)
				bar := int(pct * 30)
				fmt.Fprintf(w, "\r%s [%-30s] %3.0f%% %d/%d MiB", filepath.Base(name), strings.Repeat("=", bar), pct*100, n>>20, size>>20)
			}
		}
	}()
	return func() { close(done); <-finished }
}

// exitError carries an exit code and a message for Execute to print;
// detail, when set, is printed instead of the one-line message.
type exitError struct {
	code   int
	msg    string
	detail string
}

func (e exitError) Error() string { return e.msg }
func (e exitError) ExitCode() int { return e.code }
