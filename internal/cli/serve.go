package cli

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kdfir/kdfir/internal/alertstore"
	"github.com/kdfir/kdfir/internal/auth"
	"github.com/kdfir/kdfir/internal/config"
	"github.com/kdfir/kdfir/internal/detect"
	"github.com/kdfir/kdfir/internal/evidence"
	"github.com/kdfir/kdfir/internal/journal"
	"github.com/kdfir/kdfir/internal/kql/table"
	"github.com/kdfir/kdfir/internal/playbook"
	"github.com/kdfir/kdfir/internal/server"
	"github.com/kdfir/kdfir/internal/store"
)

func newConfigCmd(g *Globals) *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Check kdfir's configuration file", Args: cobra.NoArgs}
	cmd.AddCommand(&cobra.Command{
		Use:   "check FILE",
		Short: "Validate a configuration file offline: every error names its line",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := config.Load(args[0], false)
			if err != nil {
				return err
			}
			if len(c.Playbooks) > 0 {
				if _, err := playbook.LoadDirs(c.Playbooks...); err != nil {
					return err
				}
			}
			if _, err := loadServeRules(c); err != nil {
				return err
			}
			oidc := ""
			if c.OIDC != nil {
				oidc = fmt.Sprintf(", OIDC sign-in with %s for %d groups", c.OIDC.DisplayName(), len(c.OIDC.Groups))
			}
			fmt.Fprintf(g.Stdout, "%s: ok (%d API keys, %d clusters, %d playbook directories%s)\n", args[0], len(c.APIKeys), len(c.Clusters), len(c.Playbooks), oidc)
			return nil
		},
	})
	return cmd
}

func loadServeRules(c *config.Config) ([]*detect.Rule, error) {
	var rules []*detect.Rule
	if c.UseBuiltinRules() {
		b, err := detect.Builtin(c.RuleParams)
		if err != nil {
			return nil, err
		}
		rules = b
	}
	if len(c.Rules) > 0 {
		more, err := detect.LoadPaths(c.Rules, c.RuleParams)
		if err != nil {
			return nil, err
		}
		rules = append(rules, more...)
	}
	return rules, applyExceptions(rules, c.RuleExceptions)
}

func newServeCmd(g *Globals) *cobra.Command {
	var cfgPath, listen string
	var insecureHTTP bool
	cmd := &cobra.Command{
		Use:   "serve --config kdfir.yaml",
		Short: "Run the HTTPS service: alerts, playbooks, actions, and the audit webhook",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfgPath == "" {
				return usagef("--config is required")
			}
			c, err := config.Load(cfgPath, false)
			if err != nil {
				return err
			}
			if listen != "" {
				c.Listen = listen
			}
			if c.Listen == "" {
				c.Listen = "127.0.0.1:8443"
			}
			if insecureHTTP && !server.IsLoopback(c.Listen) {
				return usagef("--insecure-http serves plain HTTP only on a loopback address, not %s", c.Listen)
			}
			if c.DataDir != "" && g.DataDir == "" {
				g.DataDir = c.DataDir
			}
			return serve(cmd.Context(), g, c, insecureHTTP)
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "", "the service configuration (YAML)")
	cmd.Flags().StringVar(&listen, "listen", "", "override the config's listen address")
	cmd.Flags().BoolVar(&insecureHTTP, "insecure-http", false, "serve plain HTTP (only on a loopback address)")
	return cmd
}

func serve(ctx context.Context, g *Globals, c *config.Config, insecureHTTP bool) error {
	log := g.Log
	dir, err := g.dataDir()
	if err != nil {
		return err
	}
	authn, err := auth.New(c.APIKeys)
	if err != nil {
		return err
	}
	j, err := journal.Open(ctx, filepath.Join(dir, "journal.db"))
	if err != nil {
		return err
	}
	defer j.Close()
	alerts, err := alertstore.Open(ctx, filepath.Join(dir, "alerts.db"))
	if err != nil {
		return err
	}
	defer alerts.Close()
	events, err := g.openStore(ctx)
	if err != nil {
		return err
	}
	defer events.Close()
	key, _, err := evidence.LoadOrCreateKey(dir)
	if err != nil {
		return err
	}
	var books []*playbook.Playbook
	if len(c.Playbooks) > 0 {
		if books, err = playbook.LoadDirs(c.Playbooks...); err != nil {
			return err
		}
	}
	rules, err := loadServeRules(c)
	if err != nil {
		return err
	}
	dedupe := 10 * time.Minute
	if c.Alerts.DedupeWindow != "" {
		dedupe, _ = config.ParseDuration(c.Alerts.DedupeWindow)
	}
	dispatcher, err := server.NewDispatcher(c, j, key, log)
	if err != nil {
		return err
	}
	srv := &server.Server{
		Auth:         authn,
		Actions:      dispatcher,
		Alerts:       alerts,
		Metrics:      server.NewMetrics(),
		Log:          log,
		ExecEnabled:  c.Exec.Enabled,
		DedupeWindow: dedupe,
		AKSRoute:     c.AKS.RouteOrDefault(),
		ClusterName: func(ref string) string {
			if cl, ok := c.FindCluster(ref); ok {
				return cl.Name
			}
			return ""
		},
		IdempotencyWindow: c.AKS.Window(),
		Evidence:          dispatcher.Evidence,
	}
	if c.OIDC != nil {
		secret, err := c.OIDC.Secret()
		if err != nil {
			return err
		}
		srv.OIDC = server.NewOIDC(ctx, *c.OIDC, secret, log)
	}
	srv.Events, srv.Rules, srv.RuleState = events, rules, alerts
	srv.EvidenceKey = key.Public().(ed25519.PublicKey)
	if srv.EvidenceStores, err = evidenceStores(c); err != nil {
		return err
	}
	srv.Playbooks = &playbook.Engine{Playbooks: books, Exec: srv}
	engine := &detect.Engine{Rules: rules, Sink: server.RuleSink{Server: srv}, State: alerts, Log: log,
		Window: func(since, until time.Time) table.Source {
			return events.Source(store.SourceOptions{Since: since, Until: until})
		}}
	ingest := &server.AuditIngest{Store: events, Engine: engine, Log: log, Self: dispatcher.Self, ResourceID: func(name string) string {
		if cl, ok := c.FindCluster(name); ok {
			return cl.ResourceID
		}
		return ""
	}}
	nrtQueue, err := detect.OpenQueue(filepath.Join(dir, "nrt-queue.log"))
	if err != nil {
		return err
	}
	defer nrtQueue.Close()
	ingest.Queue = nrtQueue
	defer ingest.Close()
	ingest.Resume() // batches stored before a restart but not yet evaluated
	srv.Audit = ingest
	srv.Ready = func(ctx context.Context) (string, bool) {
		return readiness(ctx, c, dispatcher, j, alerts, events)
	}

	ctx, stop := context.WithCancel(ctx)
	defer stop()
	// Scheduled rules read events that audit keys delivered: their alerts
	// run only the actions the audit keys' scopes name.
	engine.Start(server.ScheduledContext(ctx, c.APIKeys))
	if c.Audit.Retention != "" {
		keep, _ := config.ParseDuration(c.Audit.Retention)
		go retain(ctx, events, keep, log)
	}

	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, IdleTimeout: 2 * time.Minute}
	hs.RegisterOnShutdown(srv.CloseStreams)
	scheme := "http"
	if !insecureHTTP {
		host, _, _ := net.SplitHostPort(c.Listen)
		tlsCfg, selfSigned, err := server.TLSConfig(c.TLS.Cert, c.TLS.Key, host)
		if err != nil {
			ln.Close()
			return err
		}
		if selfSigned {
			log.Warn("no TLS certificate configured: serving a self-signed one; set tls.cert and tls.key")
		}
		hs.TLSConfig = tlsCfg
		scheme = "https"
	} else {
		log.Warn("serving plain HTTP on a loopback address (--insecure-http)")
	}
	log.Info("kdfir serve listening", "url", scheme+"://"+ln.Addr().String(), "playbooks", len(books), "rules", len(rules), "keys", len(c.APIKeys), "clusters", len(c.Clusters))
	fmt.Fprintf(g.Stdout, "listening on %s://%s\n", scheme, ln.Addr())

	errc := make(chan error, 1)
	go func() {
		if hs.TLSConfig != nil {
			errc <- hs.ServeTLS(ln, "", "")
		} else {
			errc <- hs.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// Stop taking requests and let the ones in flight (and their
	// journaled actions) finish.
	log.Info("shutting down: finishing requests in flight")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 60*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func retain(ctx context.Context, st *store.Store, keep time.Duration, log *slog.Logger) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		n, err := st.DeleteBefore(ctx, time.Now().Add(-keep))
		if err != nil && ctx.Err() == nil {
			log.Error("retention", "err", err)
		} else if n > 0 {
			log.Info("retention deleted old events", "events", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// readiness checks the journal, the alert store, the event store and the
// clusters. kdfir serve is ready when the stores answer and the default
// cluster (or, without one, any cluster) does; every cluster is listed.
func readiness(ctx context.Context, c *config.Config, d *server.Dispatcher, j *journal.Journal, alerts *alertstore.Store, events *store.Store) (string, bool) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var b strings.Builder
	ok := true
	check := func(name string, err error) {
		if err != nil {
			fmt.Fprintf(&b, "%s: %v\n", name, err)
			ok = false
			return
		}
		fmt.Fprintf(&b, "%s: ok\n", name)
	}
	check("journal", j.Ping(ctx))
	check("alerts", alerts.Ping(ctx))
	check("events", events.DB().PingContext(ctx))
	reach := d.Reachable(ctx)
	def, hasDefault := c.FindCluster("")
	anyUp := len(c.Clusters) == 0
	for _, cl := range c.Clusters {
		err := reach[cl.Name]
		if err == nil {
			anyUp = true
			fmt.Fprintf(&b, "cluster %s: ok\n", cl.Name)
			continue
		}
		fmt.Fprintf(&b, "cluster %s: unreachable: %v\n", cl.Name, err)
		if hasDefault && cl.Name == def.Name {
			ok = false
		}
	}
	if !anyUp {
		ok = false
	}
	return b.String(), ok
}
