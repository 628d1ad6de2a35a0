package cli

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kdfir/kdfir/internal/hunt"
	"github.com/kdfir/kdfir/internal/kql/table"
	"github.com/kdfir/kdfir/internal/store"
)

func newHuntCmd(g *Globals) *cobra.Command {
	var file, since, until string
	var list, explain bool
	var timeout time.Duration
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
			if opts.Since, err = hunt.ParseWhen(since, now); err != nil {
				return usagef("invalid --since: %v", err)
			}
			if opts.Until, err = hunt.ParseWhen(until, now); err != nil {
				return usagef("invalid --until: %v", err)
			}
			if timeout < 0 {
				return usagef("invalid --timeout %v: must not be negative", timeout)
			}
			if g.Output == "yaml" {
				return usagef("hunt prints table, json or csv")
			}
			st, err := g.openStoreReading(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			ctx := cmd.Context()
			if timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			if explain {
				text, err := hunt.Explain(ctx, st, opts, query, now)
				if err != nil {
					return huntError(err, timeout)
				}
				fmt.Fprintln(g.Stdout, text)
				return nil
			}
			start := time.Now()
			spin := startSpinner(g.Stderr, start)
			cur, warns, err := hunt.Run(ctx, st, opts, query, now)
			if err != nil {
				spin.stop()
				for _, w := range warns {
					fmt.Fprintf(g.Stderr, "warning: %s\n", w)
				}
				return huntError(err, timeout)
			}
			defer cur.Close()
			spin.watch(cur.Scanned)
			out := &spinWriter{w: g.Stdout, spin: spin}
			n, err := writeRows(out, g.Output, cur)
			spin.stop()
			for _, w := range warns {
				fmt.Fprintf(g.Stderr, "warning: %s\n", w)
			}
			if err != nil {
				return huntError(err, timeout)
			}
			g.Log.Debug("query done", "rows", n, "elapsed", time.Since(start), "sql", cur.Plan.SQL != "", "evaluator", cur.Plan.Rest != nil)
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "read the query from a .kql file")
	cmd.Flags().StringVar(&since, "since", "", "only events at or after this time (e.g. 24h, 7d, 2026-11-01T00:00:00Z)")
	cmd.Flags().StringVar(&until, "until", "", "only events before this time")
	cmd.Flags().BoolVar(&list, "list", false, "list the built-in hunting queries")
	cmd.Flags().StringArrayVar(&params, "param", nil, "NAME=VALUE for a built-in query's parameters")
	cmd.Flags().BoolVar(&explain, "explain", false, "print the SQL that DuckDB runs and the part the evaluator runs, and run nothing")
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "stop the query after this long (e.g. 30s; default no limit)")
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

// huntError turns a failed query into what the user sees: a query error
// with its position and caret, a timeout, or the store's one-line error.
func huntError(err error, timeout time.Duration) error {
	switch {
	case hunt.IsQueryError(err):
		return exitError{code: ExitFailure, msg: err.Error(), detail: err.Error()}
	case errors.Is(err, context.DeadlineExceeded) && timeout > 0:
		return fmt.Errorf("hunt: the query did not finish within --timeout %v", timeout)
	}
	return err
}

// rowSource is a streamed query result.
type rowSource interface {
	Columns() []table.Column
	Next() bool
	Row() []any
	Err() error
}

// tableFlushRows is how many rows the table output aligns at a time.
const tableFlushRows = 1000

// writeRows prints a query result as it streams in: a table (aligned a
// block of rows at a time), JSON (an array of objects) or CSV. It
// returns the number of rows.
func writeRows(w io.Writer, format string, rs rowSource) (int, error) {
	cols := rs.Columns()
	n := 0
	switch format {
	case "json":
		bw := bufio.NewWriterSize(w, 64<<10)
		if _, err := bw.WriteString("["); err != nil {
			return 0, err
		}
		for rs.Next() {
			r := rs.Row()
			m := make(map[string]any, len(r))
			for j, c := range cols {
				m[c.Name] = hunt.JSONValue(r[j])
			}
			b, err := json.MarshalIndent(m, "  ", "  ")
			if err != nil {
				return n, fmt.Errorf("encode row: %w", err)
			}
			sep := "\n  "
			if n > 0 {
				sep = ",\n  "
			}
			bw.WriteString(sep)
			bw.Write(b)
			n++
		}
		if err := rs.Err(); err != nil {
			return n, err
		}
		if n > 0 {
			bw.WriteString("\n")
		}
		bw.WriteString("]\n")
		return n, bw.Flush()
	case "csv":
		cw := csv.NewWriter(w)
		head := make([]string, len(cols))
		for i, c := range cols {
			head[i] = c.Name
		}
		if err := cw.Write(head); err != nil {
			return 0, err
		}
		for rs.Next() {
			r := rs.Row()
			rec := make([]string, len(r))
			for i, v := range r {
				rec[i] = cell(v)
			}
			if err := cw.Write(rec); err != nil {
				return n, err
			}
			n++
		}
		if err := rs.Err(); err != nil {
			return n, err
		}
		cw.Flush()
		return n, cw.Error()
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for i, c := range cols {
		if i > 0 {
			fmt.Fprint(tw, "\t")
		}
		fmt.Fprint(tw, c.Name)
	}
	fmt.Fprintln(tw)
	clean := strings.NewReplacer("\t", " ", "\n", " ")
	for rs.Next() {
		for i, v := range rs.Row() {
			if i > 0 {
				fmt.Fprint(tw, "\t")
			}
			fmt.Fprint(tw, clean.Replace(cell(v)))
		}
		fmt.Fprintln(tw)
		n++
		if n%tableFlushRows == 0 {
			if err := tw.Flush(); err != nil {
				return n, err
			}
		}
	}
	if err := rs.Err(); err != nil {
		tw.Flush()
		return n, err
	}
	fmt.Fprintf(tw, "(%d rows)\n", n)
	return n, tw.Flush()
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
