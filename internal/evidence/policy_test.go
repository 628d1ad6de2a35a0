package evidence_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kdfir/kdfir/internal/evidence"
)

const goodSAS = "sv=2023-11-03&se=2099-01-01T00%3A00%3A00Z&sr=c&sp=racwl&sig=c2lnbmF0dXJl"

func TestPolicy(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "evidence")
	outside := filepath.Join(dir, "elsewhere")
	if err := os.MkdirAll(outside, 0o700); err != nil {
		t.Fatal(err)
	}
	p, err := evidence.NewPolicy(
		map[string]string{"default": root, "ir": "azblob://contosoir/evidence"},
		[]string{"https://scratch.blob.core.windows.net", "http://127.0.0.1:10000/devstoreaccount1"},
		nil)
	if err != nil {
		t.Fatal(err)
	}
	// A symlink inside the root that points out of it.
	if err := os.Symlink(outside, filepath.Join(root, "escape")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		dest string
		ok   bool
		msg  string
	}{
		{root, true, ""},
		{filepath.Join(root, "case-42"), true, ""},
		{filepath.Join(root, "new", "deeper"), true, ""},
		{filepath.Join(root, "..", "elsewhere"), false, "not under evidence.localRoots"},
		{filepath.Join(root, "escape", "x"), false, "not under evidence.localRoots"},
		{"/etc", false, "not under evidence.localRoots"},
		{"https://contosoir.blob.core.windows.net/evidence/case-1", true, ""},
		{"azblob://contosoir/evidence", true, ""},
		{"https://contosoir.blob.core.windows.net/other", false, "not under evidence.allowedEndpoints"},
		{"https://scratch.blob.core.windows.net/anything?" + goodSAS, true, ""},
		{"https://SCRATCH.blob.core.windows.net/anything", true, ""},
		{"https://evil.example.com/evidence?" + goodSAS, false, "not under evidence.allowedEndpoints"},
		{"https://scratch.blob.core.windows.net.evil.example/x", false, "not under"},
		{"http://scratch.blob.core.windows.net/x", false, "plain http"},
		{"http://169.254.169.254/metadata/x", false, "plain http"},
		{"http://127.0.0.1:10000/devstoreaccount1/evidence?" + goodSAS, true, ""},
		{"http://127.0.0.1:10000/otheraccount/evidence", false, "not under"},
		{"http://127.0.0.1:10000/devstoreaccount1/../x/y", false, "dot segments"},
		{"https://user:pw@scratch.blob.core.windows.net/x", false, "user information"},
		{"https://scratch.blob.core.windows.net/x?sv=1&se=2001-01-01&sig=abc", false, "expired"},
		{"https://scratch.blob.core.windows.net/x?sv=1&se=2099-01-01&sp=r&sig=abc", false, "does not allow writing"},
		{"https://scratch.blob.core.windows.net/x?sv=1&se=2099-01-01", false, "no signature"},
		{"ftp://scratch/x", false, "unsupported scheme"},
	} {
		err := p.Check(c.dest)
		if c.ok != (err == nil) || err != nil && !strings.Contains(err.Error(), c.msg) {
			t.Errorf("Check(%s) = %v, want ok=%v %q", c.dest, err, c.ok, c.msg)
		}
		if err != nil && strings.Contains(err.Error(), "c2lnbmF0dXJl") {
			t.Errorf("Check(%s): the signature is in the error: %v", c.dest, err)
		}
	}
	if d, err := p.Named("ir"); err != nil || d != "azblob://contosoir/evidence" {
		t.Errorf("Named(ir) = %q, %v", d, err)
	}
	if _, err := p.Named("nope"); err == nil || !strings.Contains(err.Error(), "configured: default, ir") {
		t.Errorf("Named(nope) = %v", err)
	}
	for account, want := range map[string]string{
		"devstoreaccount1": "http://127.0.0.1:10000/devstoreaccount1",
		"scratch":          "https://scratch.blob.core.windows.net",
		"unlisted":         "https://unlisted.blob.core.windows.net",
	} {
		if got, err := p.AccountURL(account); err != nil || got != want {
			t.Errorf("AccountURL(%s) = %q, %v; want %q", account, got, err, want)
		}
	}
	for _, bad := range []string{"http://169.254.169.254", "Upper", "ab", "a.b", "account-with-dash"} {
		if _, err := p.AccountURL(bad); err == nil {
			t.Errorf("AccountURL(%q) accepted", bad)
		}
	}
}

func TestPolicyConfigErrors(t *testing.T) {
	for name, c := range map[string]struct {
		endpoints []string
		dests     map[string]string
		msg       string
	}{
		"http endpoint":        {[]string{"http://10.0.0.1:10000/acct"}, nil, "plain http"},
		"endpoint with SAS":    {[]string{"https://a.blob.core.windows.net?sig=x"}, nil, "no query"},
		"path style, no acct":  {[]string{"http://127.0.0.1:10000"}, nil, "names its account"},
		"not a URL":            {[]string{"contosoir"}, nil, "not an https:// endpoint"},
		"http destination":     {nil, map[string]string{"d": "http://192.0.2.1/acct/c?sig=x"}, "plain http"},
		"destination no cont.": {nil, map[string]string{"d": "https://a.blob.core.windows.net/"}, "no container"},
	} {
		_, err := evidence.NewPolicy(c.dests, c.endpoints, nil)
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: err = %v, want %q", name, err, c.msg)
		}
	}
}

func TestCheckSAS(t *testing.T) {
	now := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	for tok, msg := range map[string]string{
		"?" + goodSAS: "",
		goodSAS:       "",
		"sv=1&se=2026-12-02T00:00:00Z&sp=w&sig=x": "expired at 2026-12-02T00:00:00Z",
		"sv=1&se=2026-12-04&sp=c&sig=x":           "",
		"sv=1&se=tomorrow&sig=x":                  "not a time",
		"sv=1&sig=x":                              "no expiry",
		"%zz":                                     "not a valid query string",
	} {
		err := evidence.CheckSAS(tok, now)
		if msg == "" && err != nil || msg != "" && (err == nil || !strings.Contains(err.Error(), msg)) {
			t.Errorf("CheckSAS(%q) = %v, want %q", tok, err, msg)
		}
	}
}

func TestRedactEncodedSignature(t *testing.T) {
	in := "to=https%3A%2F%2Fa.blob.core.windows.net%2Fc%3Fsv%3D1%26sig%3DSECRET%26se%3D2 and ?sig=SECRET2&x=1 and {\"to\":\"https://a/c?sv=1\\u0026sig=SECRET3\\u0026se=2\"}"
	out := evidence.Redact(in)
	if strings.Contains(out, "SECRET") {
		t.Fatalf("Redact left a signature: %s", out)
	}
}

// A signing key that other users can read is refused when loaded; a new
// one is written for the owner only.
func TestSigningKeyPermissions(t *testing.T) {
	dir := t.TempDir()
	if _, created, err := evidence.LoadOrCreateKey(dir); err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	path := filepath.Join(dir, evidence.KeyFile)
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("new key mode %v, %v", fi.Mode().Perm(), err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := evidence.LoadOrCreateKey(dir); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable key loaded: %v", err)
	}
}
