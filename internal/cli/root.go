// Package cli holds kdfir's cobra commands. Each command turns flags into
// library calls; the work itself lives in the internal packages.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/kdfir/kdfir/internal/cluster"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// UsageError marks an error the user made in calling a command.
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

func usagef(format string, args ...any) error {
	return UsageError{Err: fmt.Errorf(format, args...)}
}

// Globals are the flags every command shares.
type Globals struct {
	Kubeconfig   string
	Context      string
	Cluster      string
	ClustersFile string
	DataDir      string
	Output       string
	LogLevel     string
	LogFormat    string
	MemoryLimit  string

	Log    *slog.Logger
	Stdout io.Writer
	Stderr io.Writer
}

// Execute runs kdfir with args and returns the process exit code.
func Execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	// Everything kdfir writes (the journal, the stores, evidence, keys)
	// is for its own user only.
	syscall.Umask(0o077)
	g := &Globals{Stdout: stdout, Stderr: stderr}
	root := newRoot(g)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	if isUsage(err) {
		fmt.Fprintf(stderr, "Error: %s\n", oneLine(err))
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", commandPath(root, args))
		return ExitUsage
	}
	var ee exitError
	if errors.As(err, &ee) && ee.detail != "" {
		// Multi-line diagnostics (a query with a caret under each error)
		// are printed as they are.
		fmt.Fprintf(stderr, "Error: %s\n", ee.detail)
	} else {
		fmt.Fprintf(stderr, "Error: %s\n", oneLine(err))
	}
	var ec exitCoder
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	return ExitFailure
}

// exitCoder lets a command choose its exit status (for example, verify
// reporting a mismatch) while still printing its error.
type exitCoder interface{ ExitCode() int }

func isUsage(err error) bool {
	var ue UsageError
	if errors.As(err, &ue) {
		return true
	}
	// cobra reports these with plain errors.
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "invalid argument", "flag needs an argument", "accepts ", "requires at least", "requires at most", "required flag"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

func commandPath(root *cobra.Command, args []string) string {
	if c, _, err := root.Find(args); err == nil && c != nil {
		return c.CommandPath()
	}
	return root.Name()
}

func newRoot(g *Globals) *cobra.Command {
	root := &cobra.Command{
		Use:           "kdfir",
		Short:         "Incident response and threat hunting for Kubernetes",
		Long:          "kdfir isolates, cordons, collects evidence from and hunts through Kubernetes clusters.\nEvery change it makes is journaled and can be reverted exactly.",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return g.setup()
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return UsageError{Err: err} })
	// Without a Run, cobra prints help for `kdfir bogus` and exits 0; make
	// an unknown subcommand a usage error instead.
	root.Args = func(_ *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usagef("unknown command %q for %q", args[0], "kdfir")
		}
		return nil
	}
	root.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }

	pf := root.PersistentFlags()
	pf.StringVar(&g.Kubeconfig, "kubeconfig", "", "path to the kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	pf.StringVar(&g.Context, "context", "", "kubeconfig context to use")
	pf.StringVar(&g.Cluster, "cluster", "", "cluster name (or Azure ResourceId) from the clusters file")
	pf.StringVar(&g.ClustersFile, "clusters-file", "", "clusters file (default: $KDFIR_CLUSTERS_FILE or $XDG_CONFIG_HOME/kdfir/clusters.yaml)")
	pf.StringVar(&g.DataDir, "data-dir", "", "data directory (default: $KDFIR_DATA_DIR or $XDG_DATA_HOME/kdfir)")
	pf.StringVarP(&g.Output, "output", "o", "table", "output format: table, json or yaml; hunt also prints csv")
	pf.StringVar(&g.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	pf.StringVar(&g.LogFormat, "log-format", "text", "log format: text or json")
	pf.StringVar(&g.MemoryLimit, "memory-limit", "", "memory the event store may use, a size (2GiB) or a share of the machine's memory (25%); beyond it queries spill to disk (default 25%, at most 1GiB)")

	root.AddCommand(
		newVersionCmd(g),
		newClusterCmd(g),
		newKeysCmd(g),
		newRulesCmd(g),
		newAlertsCmd(g),
		newIngestCmd(g),
		newHuntCmd(g),
		newStoreCmd(g),
		newServeCmd(g),
		newConfigCmd(g),
		newCollectCmd(g),
		newEvidenceCmd(g),
		newIsolateCmd(g), newUnisolateCmd(g), newCordonCmd(g), newUncordonCmd(g), newExecCmd(g), newActionsCmd(g), newRevertCmd(g),
	)
	for _, c := range root.Commands() {
		wrapArgs(c)
	}
	return root
}

// wrapArgs makes cobra's positional-argument errors usage errors, for a
// command and all its subcommands.
func wrapArgs(c *cobra.Command) {
	if c.Args != nil {
		check := c.Args
		c.Args = func(cmd *cobra.Command, args []string) error {
			if err := check(cmd, args); err != nil {
				return UsageError{Err: err}
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		wrapArgs(sub)
	}
}

func (g *Globals) setup() error {
	switch g.Output {
	case "table", "json", "yaml", "csv":
	default:
		return usagef("invalid --output %q: want table, json, yaml (or csv, for hunt)", g.Output)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(g.LogLevel)); err != nil {
		return usagef("invalid --log-level %q: want debug, info, warn or error", g.LogLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch g.LogFormat {
	case "text":
		g.Log = slog.New(slog.NewTextHandler(g.Stderr, opts))
	case "json":
		g.Log = slog.New(slog.NewJSONHandler(g.Stderr, opts))
	default:
		return usagef("invalid --log-format %q: want text or json", g.LogFormat)
	}
	slog.SetDefault(g.Log)
	if g.Kubeconfig != "" && g.Cluster != "" {
		return usagef("--kubeconfig and --cluster are mutually exclusive")
	}
	return nil
}

// dataDir returns the data directory: --data-dir, then $KDFIR_DATA_DIR, then
// $XDG_DATA_HOME/kdfir (~/.local/share/kdfir).
func (g *Globals) dataDir() (string, error) {
	dir := g.DataDir
	if dir == "" {
		dir = os.Getenv("KDFIR_DATA_DIR")
	}
	if dir == "" {
		base := os.Getenv("XDG_DATA_HOME")
		if base == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return "", fmt.Errorf("find data directory: %w", err)
			}
			base = filepath.Join(home, ".local", "share")
		}
		dir = filepath.Join(base, "kdfir")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create data directory: %w", err)
	}
	return dir, nil
}

func (g *Globals) clustersFile() string {
	if g.ClustersFile != "" {
		return g.ClustersFile
	}
	if p := os.Getenv("KDFIR_CLUSTERS_FILE"); p != "" {
		return p
	}
	base := os.Getenv("XDG_CONFIG_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		base = filepath.Join(home, ".config")
	}
	return filepath.Join(base, "kdfir", "clusters.yaml")
}

// target resolves the cluster the command acts on: --cluster from the
// clusters file, or --kubeconfig/--context.
func (g *Globals) target() (cluster.Cluster, error) {
	if g.Cluster == "" {
		return cluster.Cluster{Kubeconfig: g.Kubeconfig, Context: g.Context}, nil
	}
	path := g.clustersFile()
	f, err := cluster.LoadFile(path)
	if err != nil {
		return cluster.Cluster{}, err
	}
	c, ok := f.Find(g.Cluster)
	if !ok {
		return cluster.Cluster{}, fmt.Errorf("cluster %q is not in %s (known: %s)", g.Cluster, path, strings.Join(f.Names(), ", "))
	}
	if g.Context != "" {
		c.Context = g.Context
	}
	return c, nil
}
