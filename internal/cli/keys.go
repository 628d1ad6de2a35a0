package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kdfir/kdfir/internal/auth"
)

func newKeysCmd(g *Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Manage kdfir serve API keys",
		Args:  cobra.NoArgs,
	}
	var scopes []string
	var cluster string
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Make a new API key: prints the key once, and the hashed entry for the config",
		Long: "Make a new API key. The key is printed once and never stored; the config holds only its salted hash.\n" +
			"Scopes are action names (isolate-pod, unisolate-pod, isolate-namespace, unisolate-namespace, cordon-node,\n" +
			"uncordon-node, collect-pod, collect-namespace, collect-node, exec-pod) and alerts, audit, read, approve, revert, or *.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if strings.TrimSpace(name) == "" || strings.ContainsAny(name, " \t\n:") {
				return usagef("invalid key name %q", name)
			}
			if len(scopes) == 0 {
				return usagef("--actions is required (for example --actions collect-pod,isolate-pod,alerts)")
			}
			secret, hash, err := auth.Generate()
			if err != nil {
				return fmt.Errorf("generate key: %w", err)
			}
			out := struct {
				Name   string   `json:"name"`
				Key    string   `json:"key"`
				Hash   string   `json:"hash"`
				Scopes []string `json:"scopes"`
			}{name, secret, hash, scopes}
			return render(g.Stdout, g.Output, out, func(w io.Writer) {
				fmt.Fprintf(w, "# The key, shown only now. Give it to the caller (?code= or the x-functions-key header):\n%s\n\n", secret)
				fmt.Fprintf(w, "# Add this to apiKeys in the kdfir serve config:\n- name: %s\n  hash: %s\n  scopes: [%s]\n", name, hash, strings.Join(scopes, ", "))
				if cluster != "" {
					fmt.Fprintf(w, "  cluster: %s\n", cluster)
				}
			})
		},
	}
	create.Flags().StringSliceVar(&scopes, "actions", nil, "scopes the key grants, comma-separated")
	create.Flags().StringVar(&cluster, "default-cluster", "", "cluster assumed for what this key sends without naming one")
	cmd.AddCommand(create)
	return cmd
}
