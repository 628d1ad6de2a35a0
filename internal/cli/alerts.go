package cli

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kdfir/kdfir/internal/alert"
	"github.com/kdfir/kdfir/internal/alertstore"
)

// openAlerts opens the alert store in the data directory.
func (g *Globals) openAlerts(ctx context.Context) (*alertstore.Store, error) {
	dir, err := g.dataDir()
	if err != nil {
		return nil, err
	}
	return alertstore.Open(ctx, filepath.Join(dir, "alerts.db"))
}

func newAlertsCmd(g *Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "alerts",
		Short: "Show the alerts kdfir received or raised",
		Args:  cobra.NoArgs,
	}
	var f alert.Filter
	list := &cobra.Command{
		Use:   "list",
		Short: "List alerts, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := g.openAlerts(cmd.Context())
			if err != nil {
				return err
			}
			defer s.Close()
			alerts, err := s.List(cmd.Context(), f)
			if err != nil {
				return err
			}
			return render(g.Stdout, g.Output, nonNilAlerts(alerts), func(w io.Writer) {
				fmt.Fprintln(w, "ID\tTIME\tSOURCE\tSEVERITY\tSTATUS\tOWNER\tTITLE\tACTIONS")
				for _, a := range alerts {
					owner := "-"
					if a.Triage != nil && a.Triage.Owner != "" {
						owner = a.Triage.Owner
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", a.ID, a.Time.Format("2006-01-02T15:04:05Z"), a.Source, a.Severity, a.StatusOf(), owner, a.Title, len(a.Actions))
				}
			})
		},
	}
	list.Flags().IntVar(&f.Limit, "limit", 50, "how many alerts to show (at most 1000)")
	list.Flags().StringSliceVar(&f.Status, "status", nil, "only these triage statuses: new, active, closed")
	list.Flags().StringSliceVar(&f.Severity, "severity", nil, "only these severities")
	list.Flags().StringSliceVar(&f.Source, "source", nil, "only these sources: defender, sentinel, falco, kdfir")
	list.Flags().StringVar(&f.Rule, "rule", "", "only alerts of this kdfir rule")
	cmd.AddCommand(list)
	cmd.AddCommand(&cobra.Command{
		Use:   "show ID",
		Short: "Show one alert: entities, matching events and the actions it started",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := g.openAlerts(cmd.Context())
			if err != nil {
				return err
			}
			defer s.Close()
			a, err := s.Get(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			a.Raw = nil
			return render(g.Stdout, g.Output, a, func(w io.Writer) {
				fmt.Fprintf(w, "id\t%s\ntime\t%s\nsource\t%s %s\nseverity\t%s\ntitle\t%s\n", a.ID, a.Time.Format("2006-01-02T15:04:05.000Z"), a.Source, a.SourceID, a.Severity, a.Title)
				if a.Description != "" {
					fmt.Fprintf(w, "description\t%s\n", a.Description)
				}
				if a.Rule != "" {
					fmt.Fprintf(w, "rule\t%s\nreport ids\t%s\n", a.Rule, strings.Join(a.ReportIDs, ", "))
				}
				fmt.Fprintf(w, "entities\t%s\nactions\t%s\n", entityList(a.Entities), strings.Join(a.Actions, ", "))
			})
		},
	})
	return cmd
}

func nonNilAlerts(a []*alert.Alert) []*alert.Alert {
	if a == nil {
		return []*alert.Alert{}
	}
	return a
}

// entityList renders entities as "pod shop/web, user alice".
func entityList(ents []alert.Entity) string {
	var parts []string
	for _, e := range ents {
		name := e.Name
		if e.Namespace != "" {
			name = e.Namespace + "/" + name
		}
		if e.Address != "" {
			name = e.Address
		}
		parts = append(parts, e.Type+" "+name)
	}
	return strings.Join(parts, ", ")
}
