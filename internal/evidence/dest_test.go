package evidence_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kdfir/kdfir/internal/evidence"
)

func TestOpenDest(t *testing.T) {
	const sas = "sv=2024-08-04&se=2099-01-01T00%3A00%3A00Z&sr=c&sp=racwl&sig=c2VjcmV0K3NpZw%3D%3D"
	for _, tc := range []struct {
		dest, want, wantErr string
	}{
		{dest: "https://acct.blob.core.windows.net/evidence?" + sas, want: "https://acct.blob.core.windows.net/evidence/"},
		{dest: "https://acct.blob.core.windows.net/evidence/prod/shop?" + sas, want: "https://acct.blob.core.windows.net/evidence/prod/shop/"},
		{dest: "http://127.0.0.1:10000/devstoreaccount1/evidence?" + sas, want: "http://127.0.0.1:10000/devstoreaccount1/evidence/"},
		{dest: "http://localhost:10000/devstoreaccount1/evidence/a/b?" + sas, want: "http://localhost:10000/devstoreaccount1/evidence/a/b/"},
		{dest: "azblob://acct/evidence", want: "https://acct.blob.core.windows.net/evidence/"},
		{dest: "azblob://acct/evidence/prod", want: "https://acct.blob.core.windows.net/evidence/prod/"},
		{dest: "https://acct.blob.core.windows.net/?" + sas, wantErr: "no container"},
		{dest: "http://127.0.0.1:10000/devstoreaccount1?" + sas, wantErr: "no container"},
		{dest: "azblob://acct", wantErr: "no container"},
		{dest: "", wantErr: "empty destination"},
	} {
		t.Run(tc.dest, func(t *testing.T) {
			sink, err := evidence.OpenDest(tc.dest)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "c2VjcmV0K3NpZw") {
					t.Fatalf("error shows the signature: %v", err)
				}
				return
			}
			must(t, err)
			if sink.String() != tc.want {
				t.Fatalf("sink %q, want %q", sink, tc.want)
			}
			if got := sink.Sub("x/y").String(); got != tc.want+"x/y/" {
				t.Fatalf("sub %q", got)
			}
		})
	}

	sink, err := evidence.SinkFromSAS("acct", "evidence", "?"+sas)
	must(t, err)
	if sink.String() != "https://acct.blob.core.windows.net/evidence/" {
		t.Fatalf("SinkFromSAS: %s", sink)
	}
	if _, err := evidence.SinkFromSAS("acct", "evidence", ""); err == nil {
		t.Fatal("SinkFromSAS without a token succeeded")
	}
	local, err := evidence.OpenDest("relative/dir")
	must(t, err)
	if abs, _ := filepath.Abs("relative/dir"); local.String() != abs {
		t.Fatalf("local %q, want %q", local, abs)
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"https://a.blob.core.windows.net/c?sv=1&sig=abc%2Bdef%3D&se=2": "https://a.blob.core.windows.net/c?sv=1&sig=REDACTED&se=2",
		`Put "http://127.0.0.1/x?comp=block&SIG=zz": EOF`:              `Put "http://127.0.0.1/x?comp=block&SIG=REDACTED": EOF`,
		"sig%3Dabc%26sv%3D1":            "sig%3DREDACTED",
		"no token here, signature=fine": "no token here, signature=fine",
	} {
		if got := evidence.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestDirSink checks the local sink: names cannot leave the directory,
// nothing is overwritten, and a failed write leaves nothing behind.
func TestDirSink(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	sink, err := evidence.NewDir(filepath.Join(root, "ev"))
	must(t, err)
	n, err := sink.Put(ctx, "../../etc/passwd", strings.NewReader("x"))
	must(t, err)
	if n != 1 {
		t.Fatalf("n = %d", n)
	}
	if _, err := os.Stat(filepath.Join(root, "ev", "etc", "passwd")); err != nil {
		t.Fatalf("traversal not contained: %v", err)
	}
	if _, err := sink.Put(ctx, "etc/passwd", strings.NewReader("y")); err == nil {
		t.Fatal("overwrote an existing file")
	}
	boom := errors.New("source broke")
	if _, err := sink.Put(ctx, "partial", io.MultiReader(strings.NewReader("half"), errReader{boom})); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the source's", err)
	}
	names, err := sink.List(ctx)
	must(t, err)
	if diff := cmp.Diff([]string{"etc/passwd"}, names); diff != "" {
		t.Fatalf("list (-want +got):\n%s", diff)
	}
	if _, err := sink.Open(ctx, "nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("open missing: %v", err)
	}
	fi, err := os.Stat(filepath.Join(root, "ev", "etc", "passwd"))
	must(t, err)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	rc, err := sink.Sub("etc").Open(ctx, "passwd")
	must(t, err)
	defer rc.Close()
	if b, _ := io.ReadAll(rc); !bytes.Equal(b, []byte("x")) {
		t.Fatalf("content %q", b)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestKeys(t *testing.T) {
	dir := t.TempDir()
	key, created, err := evidence.LoadOrCreateKey(dir)
	must(t, err)
	again, created2, err := evidence.LoadOrCreateKey(dir)
	must(t, err)
	if !created || created2 || !key.Equal(again) {
		t.Fatalf("created %v then %v; same key %v", created, created2, key.Equal(again))
	}
	pub, err := evidence.LoadPublicKey(filepath.Join(dir, evidence.PublicKeyFile))
	must(t, err)
	if !pub.Equal(key.Public()) {
		t.Fatal("evidence.pub is not the key's public key")
	}
	fi, err := os.Stat(filepath.Join(dir, evidence.KeyFile))
	must(t, err)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v, want 0600", fi.Mode().Perm())
	}
	if _, err := evidence.LoadPrivateKey(filepath.Join(dir, evidence.PublicKeyFile)); err == nil {
		t.Error("a public key loaded as a private key")
	}
	if fp := evidence.Fingerprint(pub); !strings.HasPrefix(fp, "SHA256:") || len(fp) != 50 {
		t.Errorf("fingerprint %q", fp)
	}
}
