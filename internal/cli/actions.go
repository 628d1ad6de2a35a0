package cli

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/kdfir/kdfir/internal/journal"
)

func newActionsCmd(g *Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "actions",
		Short: "Show the journal of response actions",
		Args:  cobra.NoArgs,
	}
	var f journal.Filter
	list := &cobra.Command{
		Use:   "list",
		Short: "List journaled actions, newest first (incomplete ones were interrupted; revert still works)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.Limit < 1 {
				return usagef("invalid --limit %d: want 1 or more", f.Limit)
			}
			j, err := g.openJournal(cmd.Context())
			if err != nil {
				return err
			}
			defer j.Close()
			f.Cluster = g.Cluster // only with --cluster: otherwise every cluster
			entries, err := j.List(cmd.Context(), f)
			if err != nil {
				return err
			}
			if entries == nil {
				entries = []*journal.Entry{}
			}
			return render(g.Stdout, g.Output, entries, func(w io.Writer) {
				fmt.Fprintln(w, "ID\tTIME\tACTOR\tCLUSTER\tACTION\tTARGET\tSTATUS\tREVERTED\tREASON")
				for _, e := range entries {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, e.Time.Local().Format(time.DateTime), e.Actor,
						e.Cluster, e.Action, e.Target, e.Status, revertState(e.Revert), dash(e.Reason))
				}
			})
		},
	}
	list.Flags().StringVar(&f.Action, "action", "", "only this action (isolate-pod, isolate-namespace, cordon-node, exec-pod)")
	list.Flags().StringVar(&f.Target, "target", "", "only this target (NAMESPACE/NAME, namespace or node)")
	list.Flags().IntVar(&f.Limit, "limit", 50, "at most this many")

	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show one action: its intent, the prior state it recorded, its changes, result and revert",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			j, err := g.openJournal(cmd.Context())
			if err != nil {
				return err
			}
			defer j.Close()
			e, err := j.Get(cmd.Context(), args[0])
			if errors.Is(err, journal.ErrNotFound) {
				return fmt.Errorf("no action %s in the journal", args[0])
			}
			if err != nil {
				return err
			}
			return render(g.Stdout, g.Output, e, func(w io.Writer) { showEntry(w, e) })
		},
	}
	cmd.AddCommand(list, show)
	return cmd
}

func revertState(r *journal.Revert) string {
	switch {
	case r == nil:
		return "-"
	case r.Status == journal.Succeeded:
		return r.Time.Local().Format(time.DateTime)
	default:
		return string(r.Status)
	}
}

func showEntry(w io.Writer, e *journal.Entry) {
	kv := [][2]string{
		{"id", e.ID}, {"time", e.Time.Format(time.RFC3339Nano)}, {"actor", e.Actor}, {"reason", dash(e.Reason)},
		{"cluster", e.Cluster}, {"action", e.Action}, {"target", e.Target}, {"params", dash(string(e.Params))},
		{"status", string(e.Status)},
	}
	if !e.Finished.IsZero() {
		kv = append(kv, [2]string{"finished", e.Finished.Format(time.RFC3339Nano)})
	}
	if e.Error != "" {
		kv = append(kv, [2]string{"error", e.Error})
	}
	if len(e.Result) > 0 {
		kv = append(kv, [2]string{"result", string(e.Result)})
	}
	for _, p := range kv {
		fmt.Fprintf(w, "%s\t%s\n", p[0], p[1])
	}
	if len(e.Changes) > 0 {
		fmt.Fprintln(w, "\nOP\tOBJECT\tDETAIL")
		for _, c := range e.Changes {
			fmt.Fprintf(w, "%s\t%s\t%s\n", c.Op, c.Object, c.Detail)
		}
	}
	var prior, created []string
	for _, p := range e.Prior {
		prior = append(prior, fmt.Sprintf("%s (%d bytes; -o json shows it)", p.Object, len(p.State)))
	}
	for _, o := range e.Created {
		created = append(created, o.String())
	}
	section(w, "PRIOR STATE RECORDED", prior)
	section(w, "CREATED", created)
	if r := e.Revert; r != nil {
		fmt.Fprintf(w, "\nREVERT\t%s at %s by %s\n", r.Status, r.Time.Format(time.RFC3339), r.Actor)
		if r.Error != "" {
			fmt.Fprintf(w, "error\t%s\n", r.Error)
		}
		for _, c := range r.Changes {
			fmt.Fprintf(w, "%s\t%s\t%s\n", c.Op, c.Object, c.Detail)
		}
		section(w, "LEFT ALONE", r.LeftAlone)
	}
}
