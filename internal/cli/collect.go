package cli

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"

	"github.com/kdfir/kdfir/internal/evidence"
	"github.com/kdfir/kdfir/internal/journal"
)

// collectFlags are the flags every collect subcommand takes.
type collectFlags struct {
	to         string
	images     bool
	signingKey string
	reason     string
}

func newCollectCmd(g *Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "collect",
		Short: "Collect forensic evidence to a local directory or Azure Blob, with a signed manifest",
		Long: "Collect forensic evidence from a pod, a namespace or a node, streaming every artifact to DEST\n" +
			"with its SHA-256 in an ed25519-signed manifest.json. DEST is a local directory,\n" +
			"an Azure Blob container URL with a SAS token (https://ACCOUNT.blob.core.windows.net/CONTAINER?sv=...&sig=...,\n" +
			"or any endpoint such as Azurite's), or azblob://ACCOUNT/CONTAINER for Azure credentials\n" +
			"(DefaultAzureCredential). Exit status 1 when any artifact could not be collected.",
		Args: cobra.NoArgs,
	}
	var f collectFlags
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.to, "to", "", "destination: a directory, a blob container URL with a SAS token, or azblob://ACCOUNT/CONTAINER (required)")
	pf.BoolVar(&f.images, "images", false, "also export every container image, by digest, as an OCI tarball from its registry")
	pf.StringVar(&f.signingKey, "signing-key", "", "ed25519 private key (PEM PKCS#8) to sign the manifest (default: DATA_DIR/evidence.key, created on first use)")
	pf.StringVar(&f.reason, "reason", "", "why, for the journal (an incident number, for example)")

	cmd.AddCommand(&cobra.Command{
		Use:     "pod NAMESPACE/NAME --to DEST",
		Short:   "Collect a pod: logs, manifest, describe, owners, Services, NetworkPolicies, RBAC, node, shell history, images",
		Example: "  kdfir collect pod shop/web-7f9 --to ./evidence\n  kdfir collect pod shop/web-7f9 --to 'https://acct.blob.core.windows.net/evidence?sv=...&sig=...'",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ns, name, ok := strings.Cut(args[0], "/")
			if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
				return usagef("invalid pod %q: want NAMESPACE/NAME", args[0])
			}
			return g.collect(cmd.Context(), f, evidence.Request{Kind: evidence.KindPod, Namespace: ns, Name: name})
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "namespace NAME --to DEST",
		Short: "Collect every pod of a namespace, and its Services, NetworkPolicies, Roles, RoleBindings, ServiceAccounts and events",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.collect(cmd.Context(), f, evidence.Request{Kind: evidence.KindNamespace, Name: args[0]})
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "node NAME --to DEST",
		Short: "Collect a node's manifest, every pod on it, and its events",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.collect(cmd.Context(), f, evidence.Request{Kind: evidence.KindNode, Name: args[0]})
		},
	})
	return cmd
}

// collect runs one collection, journaled: the intent before, the location,
// manifest hash and result after.
func (g *Globals) collect(ctx context.Context, f collectFlags, req evidence.Request) error {
	if f.to == "" {
		return usagef("--to DEST is required")
	}
	sink, err := evidence.OpenDest(f.to)
	if err != nil {
		return UsageError{Err: err}
	}
	key, err := g.signingKey(f.signingKey)
	if err != nil {
		return err
	}
	c, cfg, err := g.connect()
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("client for %s: %w", cfg.Host, err)
	}
	j, err := g.openJournal(ctx)
	if err != nil {
		return err
	}
	defer j.Close()

	target := req.Name
	if req.Kind == evidence.KindPod {
		target = req.Namespace + "/" + req.Name
	}
	params, _ := json.Marshal(map[string]any{"to": evidence.Redact(f.to), "images": f.images})
	entry := &journal.Entry{ID: journal.NewID(), Actor: actor(), Reason: f.reason, Cluster: c.DisplayName(), Target: target, Params: params}
	req.Images = f.images
	log := g.Log.With("action", entry.ID)
	log.Info("collecting evidence", "target", strings.ToLower(req.Kind)+" "+target, "to", sink.String())
	collector, err := evidence.New(cs, cfg, evidence.Options{Cluster: c.DisplayName(), SigningKey: key, Log: log})
	if err != nil {
		return err
	}
	res, err := evidence.Journaled(ctx, j, collector, sink, req, entry)
	if err != nil {
		return err
	}
	if rerr := render(g.Stdout, g.Output, res, func(w io.Writer) { collectTable(w, res) }); rerr != nil {
		return rerr
	}
	if len(res.Failed) > 0 {
		return fmt.Errorf("collect %s %s: %d of %d artifacts not collected (see %s in %s)", strings.ToLower(req.Kind), target, len(res.Failed), res.Artifacts, evidence.ManifestName, res.Location)
	}
	return nil
}

func collectTable(w io.Writer, res *evidence.Result) {
	fmt.Fprintf(w, "action\t%s\n", res.ActionID)
	fmt.Fprintf(w, "target\t%s %s\n", strings.ToLower(res.Target.Kind), strings.TrimPrefix(res.Target.Namespace+"/"+res.Target.Name, "/"))
	fmt.Fprintf(w, "location\t%s\n", res.Location)
	fmt.Fprintf(w, "manifest sha256\t%s\n", res.ManifestSHA256)
	fmt.Fprintf(w, "artifacts\t%d (%d bytes), %d not collected\n", res.Artifacts, res.Bytes, len(res.Failed))
	for _, a := range res.Failed {
		fmt.Fprintf(w, "not collected\t%s: %s\n", a.Path, a.Error)
	}
}

// signingKey loads --signing-key, or the data directory's key, creating
// it on first use.
func (g *Globals) signingKey(path string) (ed25519.PrivateKey, error) {
	if path != "" {
		return evidence.LoadPrivateKey(path)
	}
	dir, err := g.dataDir()
	if err != nil {
		return nil, err
	}
	key, created, err := evidence.LoadOrCreateKey(dir)
	if err != nil {
		return nil, err
	}
	if created {
		g.Log.Info("created the evidence signing key", "key", filepath.Join(dir, evidence.KeyFile),
			"public", filepath.Join(dir, evidence.PublicKeyFile), "fingerprint", evidence.Fingerprint(key.Public().(ed25519.PublicKey)))
	}
	return key, nil
}
