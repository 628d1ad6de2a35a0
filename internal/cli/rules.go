package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kdfir/kdfir/internal/audit"
	"github.com/kdfir/kdfir/internal/detect"
	"github.com/kdfir/kdfir/internal/sigma"
)

func newRulesCmd(g *Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rules",
		Short: "List, validate and test detection rules",
		Args:  cobra.NoArgs,
	}
	var paths, exceptions []string
	var noBuiltin bool
	load := func() ([]*detect.Rule, error) { return loadRules(paths, !noBuiltin, exceptions) }
	cmd.PersistentFlags().StringSliceVar(&paths, "rules", nil, "rule files or directories to load besides the built-in pack")
	cmd.PersistentFlags().StringSliceVar(&exceptions, "exceptions", nil, "exceptions files: rule exceptions, and rules to enable or disable")
	cmd.PersistentFlags().BoolVar(&noBuiltin, "no-builtin", false, "leave out the built-in rule pack")

	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List the rules",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rules, err := load()
			if err != nil {
				return err
			}
			return render(g.Stdout, g.Output, rules, func(w io.Writer) {
				fmt.Fprintln(w, "ID\tSEVERITY\tMODE\tTACTICS\tTITLE")
				for _, r := range rules {
					mode := "nrt"
					if r.Schedule != nil {
						mode = fmt.Sprintf("every %s", r.Schedule.Every)
					}
					if r.Disabled {
						mode += " (disabled)"
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", r.ID, r.Severity, mode, strings.Join(r.Tactics, ","), r.Title)
				}
			})
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "validate PATH...",
		Short: "Validate rule files or directories; every invalid rule is reported",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rules, err := detect.LoadPaths(args, nil)
			if err != nil {
				for _, line := range strings.Split(err.Error(), "\n") {
					fmt.Fprintln(g.Stderr, line)
				}
				return fmt.Errorf("invalid rules in %s", strings.Join(args, ", "))
			}
			fmt.Fprintf(g.Stdout, "%d rules valid\n", len(rules))
			return nil
		},
	})
	var data, assumeTime string
	test := &cobra.Command{
		Use:   "test RULE --data FILE.jsonl",
		Short: "Run a rule offline on a file of audit events and print the alerts it would raise",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if data == "" {
				return usagef("--data is required")
			}
			rules, err := load()
			if err != nil {
				return err
			}
			var rule *detect.Rule
			for _, r := range rules {
				if r.ID == args[0] {
					rule = r
				}
			}
			if rule == nil {
				return fmt.Errorf("no rule %q (see kdfir rules list)", args[0])
			}
			opts := audit.Options{Cluster: "offline"}
			switch assumeTime {
			case "":
			case "now":
				opts.AssumeTime = time.Now().UTC()
			default:
				t, ok := audit.ParseTime(assumeTime)
				if !ok {
					return usagef("--assume-time %q: want an RFC 3339 time, now or empty", assumeTime)
				}
				opts.AssumeTime = t
			}
			f, err := os.Open(data)
			if err != nil {
				return err
			}
			defer f.Close()
			events, stats, err := audit.DecodeAll(f, opts)
			if err != nil {
				return err
			}
			for _, p := range stats.Problems {
				if !p.Skipped {
					fmt.Fprintf(g.Stderr, "%s:%d: %s\n", data, p.Line, p.Reason)
				}
			}
			alerts, excepted, err := (&detect.Engine{}).EvaluateDetail(cmd.Context(), rule, audit.NewBatchSource(events))
			if err != nil {
				return fmt.Errorf("rule %s: %w", rule.ID, err)
			}
			return render(g.Stdout, g.Output, alerts, func(w io.Writer) {
				fmt.Fprintf(w, "%d alerts from %d events", len(alerts), len(events))
				if rule.Disabled {
					fmt.Fprint(w, " (the rule is disabled: it runs here, not in ingest or serve)")
				}
				fmt.Fprintln(w)
				if len(alerts) > 0 {
					fmt.Fprintln(w, "TIME\tSEVERITY\tTITLE\tENTITIES")
				}
				for _, a := range alerts {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", a.Time.Format("2006-01-02T15:04:05Z"), a.Severity, a.Title, entityList(a.Entities))
				}
				if len(excepted) > 0 {
					fmt.Fprintf(w, "%d suppressed by exceptions\n", len(excepted))
					fmt.Fprintln(w, "EXCEPTION\tREPORT ID\tNAMESPACE\tUSER\tIMAGE")
				}
				for _, x := range excepted {
					fmt.Fprintf(w, "%s\t%s\t%v\t%v\t%v\n", x.Exception, x.ReportID, orDash(x.Fields["Namespace"]), orDash(x.Fields["Username"]), orDash(x.Fields["Image"]))
				}
			})
		},
	}
	cmd.AddCommand(newRulesImportCmd(g))
	test.Flags().StringVar(&data, "data", "", "audit events (any format kdfir ingest reads)")
	test.Flags().StringVar(&assumeTime, "assume-time", "now", "time of events that carry none (RFC 3339, now, or empty to reject them)")
	cmd.AddCommand(test)
	return cmd
}

func orDash(v any) any {
	if v == nil || v == "" {
		return "-"
	}
	return v
}

func newRulesImportCmd(g *Globals) *cobra.Command {
	imp := &cobra.Command{Use: "import", Short: "Translate rules of other formats into kdfir rules", Args: cobra.NoArgs}
	var out string
	sg := &cobra.Command{
		Use:   "sigma FILE|DIR...",
		Short: "Translate Sigma rules for Kubernetes audit logs (logsource product: kubernetes, service: audit) into kdfir rules",
		Long: "Translate Sigma rules into kdfir rules (KQL over KubeAudit). Supported modifiers: " + strings.Join(sigma.Modifiers, ", ") +
			". A rule that uses anything else is refused with one line; the others are still written.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rules, errs := sigma.ConvertPaths(args)
			var valid []*sigma.Rule
			for _, r := range rules {
				if _, err := detect.Parse(r.FileName(), r.YAML, nil); err != nil {
					errs = append(errs, fmt.Errorf("translated rule %s: %v", r.ID, strings.SplitN(err.Error(), "\n", 2)[0]))
					continue
				}
				valid = append(valid, r)
			}
			for _, r := range valid {
				if out == "" {
					fmt.Fprintf(g.Stdout, "---\n%s", r.YAML)
					continue
				}
				if err := os.MkdirAll(out, 0o755); err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(out, r.FileName()), r.YAML, 0o644); err != nil {
					return err
				}
			}
			for _, err := range errs {
				fmt.Fprintln(g.Stderr, err)
			}
			if out != "" {
				fmt.Fprintf(g.Stderr, "%d rules written to %s, %d refused\n", len(valid), out, len(errs))
			}
			if len(errs) > 0 {
				return fmt.Errorf("%d Sigma rules not imported", len(errs))
			}
			return nil
		},
	}
	sg.Flags().StringVar(&out, "out", "", "directory to write the rules to (default: print them)")
	imp.AddCommand(sg)
	return imp
}
