package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kdfir/kdfir/internal/config"
)

func TestLoad(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		want    *config.Config
		wantErr string
	}{
		{
			name: "exec section",
			yaml: "exec: {enabled: true, allow: [[cat], [ls, -la]], maxOutputBytes: 2048}\n",
			want: &config.Config{Exec: config.Exec{Enabled: true, Allow: [][]string{{"cat"}, {"ls", "-la"}}, MaxOutputBytes: 2048}},
		},
		{name: "empty file", yaml: "", want: &config.Config{}},
		{name: "unknown key", yaml: "exec: {enabeld: true}\n", wantErr: `line 1: field enabeld not found`},
		{name: "empty prefix", yaml: "exec: {allow: [[]]}\n", wantErr: "exec.allow[0]: empty argv prefix"},
		{name: "empty argument", yaml: "exec: {allow: [[ls, '']]}\n", wantErr: "exec.allow[0][1]: empty argument"},
		{name: "negative cap", yaml: "exec: {maxOutputBytes: -1}\n", wantErr: "exec.maxOutputBytes: -1 is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "config.yaml")
			if err := os.WriteFile(path, []byte(tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := config.Load(path, false)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Load error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Fatalf("Load (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.yaml")
	if c, err := config.Load(path, true); err != nil || c.Exec.Enabled {
		t.Fatalf("optional missing file = %+v, %v; want empty config", c, err)
	}
	if _, err := config.Load(path, false); err == nil {
		t.Fatal("required missing file loaded")
	}
}

func TestDefaultPath(t *testing.T) {
	t.Setenv("KDFIR_CONFIG", "")
	t.Setenv("XDG_CONFIG_HOME", "/cfg")
	if got := config.DefaultPath(); got != "/cfg/kdfir/config.yaml" {
		t.Fatalf("DefaultPath = %q", got)
	}
	t.Setenv("KDFIR_CONFIG", "/etc/kdfir.yaml")
	if got := config.DefaultPath(); got != "/etc/kdfir.yaml" {
		t.Fatalf("DefaultPath with $KDFIR_CONFIG = %q", got)
	}
}
