package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kdfir/kdfir/internal/cluster"
)

func newClusterCmd(g *Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Show the clusters kdfir can act on",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List the clusters in the clusters file",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := g.clustersFile()
			f, err := cluster.LoadFile(path)
			if err != nil {
				return err
			}
			return render(g.Stdout, g.Output, f.Clusters, func(w io.Writer) {
				fmt.Fprintln(w, "NAME\tKUBECONFIG\tCONTEXT\tIN-CLUSTER\tRESOURCE-ID")
				for _, c := range f.Clusters {
					fmt.Fprintf(w, "%s\t%s\t%s\t%t\t%s\n", c.Name, dash(c.Kubeconfig), dash(c.Context), c.InCluster, dash(c.ResourceID))
				}
			})
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "info",
		Short: "Connect to the target cluster and show its server and version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, cfg, err := g.connect()
			if err != nil {
				return err
			}
			cs, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				return fmt.Errorf("client for %s: %w", cfg.Host, err)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 15*time.Second)
			defer cancel()
			v, err := serverVersion(ctx, cs)
			if err != nil {
				return unreachable(cfg, err)
			}
			info := struct {
				Name    string `json:"name"`
				Server  string `json:"server"`
				Version string `json:"version"`
			}{c.DisplayName(), cfg.Host, v}
			return render(g.Stdout, g.Output, info, func(w io.Writer) {
				fmt.Fprintf(w, "name\t%s\nserver\t%s\nversion\t%s\n", info.Name, info.Server, info.Version)
			})
		},
	})
	return cmd
}

func serverVersion(ctx context.Context, cs kubernetes.Interface) (string, error) {
	body, err := cs.Discovery().RESTClient().Get().AbsPath("/version").Do(ctx).Raw()
	if err != nil {
		return "", err
	}
	var v struct {
		GitVersion string `json:"gitVersion"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return "", err
	}
	return v.GitVersion, nil
}

// connect resolves the target cluster and its client configuration.
func (g *Globals) connect() (cluster.Cluster, *rest.Config, error) {
	c, err := g.target()
	if err != nil {
		return c, nil, err
	}
	cfg, err := c.RESTConfig()
	if err != nil {
		return c, nil, err
	}
	cfg.Timeout = 30 * time.Second
	cfg.UserAgent = "kdfir"
	return c, cfg, nil
}

// unreachable turns a connection failure into one line that names the server.
func unreachable(cfg *rest.Config, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		err = oe.Err
	}
	return fmt.Errorf("cannot reach cluster API server %s: %v", cfg.Host, err)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
