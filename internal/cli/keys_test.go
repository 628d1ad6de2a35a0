package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/kdfir/kdfir/internal/auth"
	"github.com/kdfir/kdfir/internal/config"
)

func TestKeysCreate(t *testing.T) {
	var out, errOut bytes.Buffer
	code := Execute(context.Background(), []string{"keys", "create", "sentinel", "--actions", "collect-pod,alerts", "-o", "json"}, &out, &errOut)
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var got struct{ Name, Key, Hash string }
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	a, err := auth.New([]*auth.Key{{Name: got.Name, Hash: got.Hash}})
	if err != nil {
		t.Fatal(err)
	}
	if a.Lookup(got.Key) == nil {
		t.Fatal("printed hash does not verify the printed key")
	}
	if code := Execute(context.Background(), []string{"keys", "create", "x"}, &out, &errOut); code != ExitUsage {
		t.Fatalf("missing --actions: exit %d, want %d", code, ExitUsage)
	}
}

// The text output is a config snippet that kdfir serve's config takes
// as it is, under the key its hint names.
func TestKeysCreateHintParses(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := Execute(context.Background(), []string{"keys", "create", "sentinel", "--actions", "isolate-pod,read"}, &out, &errOut); code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	text := out.String()
	i := strings.Index(text, "# Add this to apiKeys")
	if i < 0 {
		t.Fatalf("no apiKeys hint in %q", text)
	}
	c, err := config.Parse("kdfir.yaml", []byte("apiKeys:\n"+text[i:]))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.APIKeys) != 1 || c.APIKeys[0].Name != "sentinel" || !c.APIKeys[0].Allows("isolate-pod") {
		t.Fatalf("keys = %+v", c.APIKeys)
	}
}

func TestUsageAndExitCodes(t *testing.T) {
	cases := []struct {
		args []string
		want int
	}{
		{[]string{"version"}, ExitOK},
		{[]string{"bogus"}, ExitUsage},
		{[]string{"--no-such-flag"}, ExitUsage},
		{[]string{"version", "extra"}, ExitUsage},
		{[]string{"-o", "xml", "version"}, ExitUsage},
		{[]string{"--log-level", "loud", "version"}, ExitUsage},
		{[]string{"cluster", "info", "--kubeconfig", "/nonexistent/kubeconfig"}, ExitFailure},
	}
	for _, c := range cases {
		var out, errOut bytes.Buffer
		if got := Execute(context.Background(), c.args, &out, &errOut); got != c.want {
			t.Errorf("%v: exit %d, want %d (stderr %q)", c.args, got, c.want, errOut.String())
		}
		if c.want != ExitOK && bytes.Count(bytes.TrimSpace(errOut.Bytes()), []byte("\n")) > 1 {
			t.Errorf("%v: error is more than a line and a hint: %q", c.args, errOut.String())
		}
	}
}

func TestVersionJSON(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := Execute(context.Background(), []string{"version", "-o", "json"}, &out, &errOut); code != ExitOK {
		t.Fatal(errOut.String())
	}
	var v struct{ Version, Commit, GoVersion string }
	if err := json.Unmarshal(out.Bytes(), &v); err != nil || v.GoVersion == "" || v.Version == "" {
		t.Fatalf("version json = %q (%v)", out.String(), err)
	}
}
