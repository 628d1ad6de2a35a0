package cli

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kdfir/kdfir/internal/evidence"
)

func newEvidenceCmd(g *Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "evidence",
		Short: "Verify collected evidence, and show the key that signs it",
		Args:  cobra.NoArgs,
	}
	var pubkey string
	verify := &cobra.Command{
		Use:   "verify DEST",
		Short: "Check every artifact's hash and the manifest's signature; exit 1 on any missing, extra or altered file",
		Long: "Verify a collection: DEST is the directory or blob prefix that holds manifest.json\n" +
			"(a local directory, a container URL with the prefix in its path and a SAS token, or\n" +
			"azblob://ACCOUNT/CONTAINER/PREFIX). The signature is checked against --pubkey, else\n" +
			"DATA_DIR/evidence.pub, else (with a warning) the collection's own manifest.pub.",
		Example: "  kdfir evidence verify ./evidence/prod/shop/web-7f9/20261123T070000Z-20261123T070000Z-1a2b3c4d --pubkey trusted.pub",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sink, err := evidence.OpenDest(args[0])
			if err != nil {
				return UsageError{Err: err}
			}
			trusted, err := g.trustedKey(pubkey)
			if err != nil {
				return err
			}
			rep, err := evidence.Verify(cmd.Context(), sink, trusted)
			if err != nil {
				return fmt.Errorf("evidence verify: %w", err)
			}
			if err := render(g.Stdout, g.Output, rep, func(w io.Writer) { verifyTable(w, rep) }); err != nil {
				return err
			}
			if !rep.OK() {
				return fmt.Errorf("evidence verify %s: %d problem(s) found", rep.Location, len(rep.Problems))
			}
			return nil
		},
	}
	verify.Flags().StringVar(&pubkey, "pubkey", "", "trusted ed25519 public key (PEM) to check the signature against")
	cmd.AddCommand(verify)

	var signingKey string
	pub := &cobra.Command{
		Use:   "pubkey",
		Short: "Print the public key that signs evidence manifests (PEM), creating the key on first use",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			key, err := g.signingKey(signingKey)
			if err != nil {
				return err
			}
			pk := key.Public().(ed25519.PublicKey)
			out := struct {
				PublicKey   string `json:"publicKey"`
				Fingerprint string `json:"fingerprint"`
			}{string(evidence.MarshalPublicKey(pk)), evidence.Fingerprint(pk)}
			if g.Output == "table" {
				_, err := g.Stdout.Write([]byte(out.PublicKey))
				return err
			}
			return render(g.Stdout, g.Output, out, nil)
		},
	}
	pub.Flags().StringVar(&signingKey, "signing-key", "", "ed25519 private key (PEM PKCS#8) (default: DATA_DIR/evidence.key)")
	cmd.AddCommand(pub)
	return cmd
}

// trustedKey is --pubkey, else the data directory's evidence.pub, else nil
// (verify then falls back to the collection's manifest.pub).
func (g *Globals) trustedKey(path string) (ed25519.PublicKey, error) {
	if path != "" {
		return evidence.LoadPublicKey(path)
	}
	dir, err := g.dataDir()
	if err != nil {
		return nil, err
	}
	p := filepath.Join(dir, evidence.PublicKeyFile)
	if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
		g.Log.Warn("no trusted public key: checking the signature against the collection's own manifest.pub, which proves integrity but not who signed it; pass --pubkey",
			"looked for", p)
		return nil, nil
	}
	return evidence.LoadPublicKey(p)
}

func verifyTable(w io.Writer, r *evidence.Report) {
	fmt.Fprintf(w, "location\t%s\n", r.Location)
	if r.ActionID != "" {
		fmt.Fprintf(w, "action\t%s %s\n", r.Action, r.ActionID)
		fmt.Fprintf(w, "target\t%s %s (cluster %s)\n", r.Target.Kind, strings.TrimPrefix(r.Target.Namespace+"/"+r.Target.Name, "/"), r.Cluster)
	}
	trust := "trusted"
	if !r.Trusted {
		trust = "from manifest.pub, not trusted"
	}
	fmt.Fprintf(w, "key\t%s (%s)\n", dash(r.Key), trust)
	sig := "valid"
	if !r.Signed {
		sig = "INVALID"
	}
	fmt.Fprintf(w, "signature\t%s\n", sig)
	fmt.Fprintf(w, "artifacts\t%d checked, %d recorded as not collected\n", r.Checked, r.Failed)
	if r.OK() {
		fmt.Fprintln(w, "result\tOK")
		return
	}
	fmt.Fprintf(w, "result\tFAILED: %d problems\n", len(r.Problems))
	for _, p := range r.Problems {
		fmt.Fprintf(w, "%s\t%s: %s\n", p.Kind, p.Path, p.Detail)
	}
}
