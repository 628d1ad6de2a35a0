package cli

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kdfir/kdfir/internal/config"
	"github.com/kdfir/kdfir/internal/hunt"
	"github.com/kdfir/kdfir/internal/kql/eval"
	"github.com/kdfir/kdfir/internal/store"
)

func newHuntCmd(g *Globals) *cobra.Command {
	var file, since, until string
	var list bool
	var params []string
	cmd := &cobra.Command{
		Use:   "hunt ['QUERY' | NAME]",
		Short: "Hunt through stored audit events with KQL (tables KubeAudit, CloudAuditEvents, AKSAudit)",
		Long: "Run a KQL query, a file of KQL (-f), or a built-in hunting query by name (--list shows them)\n" +
			"over the event store. --since and --until bound the time range of every table the query reads\n" +
			"(a duration such as 24h or 7d back from now, or an RFC 3339 time); --cluster restricts it to one\n" +
			"cluster. Output: -o table (default), json or csv.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if list {
				lib := hunt.Library()
				return render(g.Stdout, g.Output, lib, func(w io.Writer) {
					fmt.Fprintln(w, "NAME\tPARAMS\tDESCRIPTION")
					for _, b := range lib {
						fmt.Fprintf(w, "%s\t%s\t%s\n", b.Name, dash(strings.Join(b.Params, ",")), b.Description)
					}
				})
			}
			query, err := huntQuery(args, file, params)
			if err != nil {
				return err
			}
			now := time.Now().UTC()
			opts := store.SourceOptions{Cluster: g.Cluster}
			if opts.Since, err = parseWhen(since, now); err != nil {
				return usagef("invalid --since: %v", err)
			}
			if opts.Until, err = parseWhen(until, now); err != nil {
				return usagef("invalid --until: %v", err)
			}
			st, err := g.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			start := time.Now()
			res, warns, err := hunt.Run(cmd.Context(), st.Source(opts), query, now)
			for _, w := range warns {
				fmt.Fprintf(g.Stderr, "warning: %s\n", w)
			}
			if err != nil {
				if hunt.IsQueryError(err) {
					return exitError{code: ExitFailure, msg: err.Error(), detail: err.Error()}
				}
				return err
			}
			g.Log.Debug("query done", "rows", len(res.Rows), "elapsed", time.Since(start))
			return writeResult(g.Stdout, g.Output, res)
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "read the query from a .kql file")
	cmd.Flags().StringVar(&since, "since", "", "only events at or after this time (e.g. 24h, 7d, 2026-11-01T00:00:00Z)")
	cmd.Flags().StringVar(&until, "until", "", "only events before this time")
	cmd.Flags().BoolVar(&list, "list", false, "list the built-in hunting queries")
	cmd.Flags().StringArrayVar(&params, "param", nil, "NAME=VALUE for a built-in query's parameters")
	return cmd
}

// huntQuery picks the query: -f FILE, a built-in name, or the text itself.
func huntQuery(args []string, file string, params []string) (string, error) {
	switch {
	case file != "" && len(args) > 0:
		return "", usagef("give a query or -f FILE, not both")
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("read query: %w", err)
		}
		return string(b), nil
	case len(args) == 0:
		return "", usagef("give a query, -f FILE, or a built-in query name (see --list)")
	}
	b, ok := hunt.Find(args[0])
	if !ok {
		if len(params) > 0 {
			return "", usagef("--param is only for built-in queries, and %q is not one", args[0])
		}
		return args[0], nil
	}
	values := map[string]string{}
	for _, p := range params {
		k, v, ok := strings.Cut(p, "=")
		if !ok {
			return "", usagef("invalid --param %q: want NAME=VALUE", p)
		}
		values[k] = v
	}
	q, err := b.Expand(values)
	if err != nil {
		return "", UsageError{Err: err}
	}
	return q, nil
}

// parseWhen reads a duration back from now (24h, 7d) or an RFC 3339 time.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	d, err := config.ParseDuration(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither a duration (24h, 7d) nor an RFC 3339 time", s)
	}
	return now.Add(-d), nil
}

// writeResult prints a query result as a table, JSON (an array of
// objects) or CSV.
func writeResult(w io.Writer, format string, res *eval.Result) error {
	switch format {
	case "json":
		rows := make([]map[string]any, len(res.Rows))
		for i, r := range res.Rows {
			m := make(map[string]any, len(r))
			for j, c := range res.Columns {
				m[c.Name] = jsonValue(r[j])
			}
			rows[i] = m
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	case "csv":
		cw := csv.NewWriter(w)
		head := make([]string, len(res.Columns))
		for i, c := range res.Columns {
			head[i] = c.Name
		}
		if err := cw.Write(head); err != nil {
			return err
		}
		for _, r := range res.Rows {
			rec := make([]string, len(r))
			for i, v := range r {
				rec[i] = cell(v)
			}
			if err := cw.Write(rec); err != nil {
				return err
			}
		}
		cw.Flush()
		return cw.Error()
	case "yaml":
		return usagef("hunt prints table, json or csv")
	default:
		return render(w, "table", nil, func(tw io.Writer) {
			for i, c := range res.Columns {
				if i > 0 {
					fmt.Fprint(tw, "\t")
				}
				fmt.Fprint(tw, c.Name)
			}
			fmt.Fprintln(tw)
			for _, r := range res.Rows {
				for i, v := range r {
					if i > 0 {
						fmt.Fprint(tw, "\t")
					}
					fmt.Fprint(tw, strings.NewReplacer("\t", " ", "\n", " ").Replace(cell(v)))
				}
				fmt.Fprintln(tw)
			}
			fmt.Fprintf(tw, "(%d rows)\n", len(res.Rows))
		})
	}
}

func jsonValue(v any) any {
	switch v := v.(type) {
	case time.Time:
		return v.UTC().Format(time.RFC3339Nano)
	case time.Duration:
		return v.String()
	}
	return v
}

// cell renders a value as Kusto shows it: datetimes in ISO 8601, dynamic
// values as compact JSON, null as empty.
func cell(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case time.Time:
		return v.UTC().Format("2006-01-02T15:04:05.0000000Z")
	case []any, map[string]any:
		b, _ := json.Marshal(v)
		return string(b)
	default:
		return fmt.Sprint(v)
	}
}
