// Package config is kdfir's configuration file, read by the CLI with
// --config (and, later, by kdfir serve, which extends it):
//
//	# ~/.config/kdfir/config.yaml
//	exec:
//	  enabled: true          # exec is off unless this is true (or --allow-exec is given)
//	  allow:                 # argv prefixes; kdfir serve runs nothing when empty, unless allowAny: true
//	  - [cat]
//	  - [ls, -la]
//	  maxOutputBytes: 1048576 # cap on captured stdout and on stderr, each
//
// Unknown keys are errors, so a typo never silently turns a setting off.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Config is the configuration file. The CLI reads exec; kdfir serve reads
// all of it (see Serve).
type Config struct {
	Exec  Exec `json:"exec" yaml:"exec"`
	Serve `json:",inline" yaml:",inline"`
}

// Exec configures `kdfir exec`.
type Exec struct {
	// Enabled turns exec on. It is off by default.
	Enabled bool `json:"enabled" yaml:"enabled"`
	// Allow is an allowlist of argv prefixes: a command may run when its
	// argv starts with one of them, element by element. kdfir serve runs
	// nothing when it is empty, unless AllowAny is set; kdfir exec, at an
	// operator's terminal, runs any command then.
	Allow [][]string `json:"allow,omitempty" yaml:"allow"`
	// AllowAny lets kdfir serve run any command when Allow is empty.
	AllowAny bool `json:"allowAny,omitempty" yaml:"allowAny"`
	// MaxOutputBytes caps the stdout and the stderr kept from a command,
	// each. Zero means the default (1 MiB).
	MaxOutputBytes int `json:"maxOutputBytes,omitempty" yaml:"maxOutputBytes"`
}

// DefaultPath is where kdfir looks when --config is not given:
// $KDFIR_CONFIG, then $XDG_CONFIG_HOME/kdfir/config.yaml
// (~/.config/kdfir/config.yaml).
func DefaultPath() string {
	if p := os.Getenv("KDFIR_CONFIG"); p != "" {
		return p
	}
	base := os.Getenv("XDG_CONFIG_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		base = filepath.Join(home, ".config")
	}
	return filepath.Join(base, "kdfir", "config.yaml")
}

// Load reads and validates the file at path. With optional set, a missing
// file is an empty configuration rather than an error (for the default
// path). Every error names the file and line.
func Load(path string, optional bool) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if optional && errors.Is(err, os.ErrNotExist) {
			return &Config{}, nil
		}
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, b)
}

// Parse decodes and validates a configuration.
func Parse(path string, b []byte) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s:%s", path, strings.TrimPrefix(strings.ReplaceAll(err.Error(), "\n ", ""), "yaml: unmarshal errors:"))
	}
	var doc yaml.Node
	_ = yaml.Unmarshal(b, &doc)
	lines := map[string]int{}
	if len(doc.Content) > 0 {
		indexLines(doc.Content[0], "", lines)
	}
	if err := c.Validate(); err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			return nil, fmt.Errorf("%s:%d: %s", path, lineOf(lines, fe.Path), err)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &c, nil
}

// FieldError is a validation error about one setting, named by its path
// (api_keys[0].hash), so the caller can find its line.
type FieldError struct {
	Path string
	Msg  string
}

func (e *FieldError) Error() string { return e.Path + ": " + e.Msg }

func fieldErrorf(path, format string, args ...any) error {
	return &FieldError{Path: path, Msg: fmt.Sprintf(format, args...)}
}

// indexLines records the line of every key path in a YAML document.
func indexLines(n *yaml.Node, path string, lines map[string]int) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := n.Content[i].Value
			if path != "" {
				p = path + "." + p
			}
			lines[p] = n.Content[i].Line
			indexLines(n.Content[i+1], p, lines)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			lines[p] = c.Line
			indexLines(c, p, lines)
		}
	}
}

// lineOf finds the line of a path, or of its nearest parent.
func lineOf(lines map[string]int, path string) int {
	for p := path; p != ""; {
		if l, ok := lines[p]; ok {
			return l
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return 1
}

// Validate checks the values.
func (c *Config) Validate() error {
	for i, p := range c.Exec.Allow {
		if len(p) == 0 {
			return fieldErrorf(fmt.Sprintf("exec.allow[%d]", i), "empty argv prefix (leave allow out to allow any command)")
		}
		for j, a := range p {
			if a == "" {
				return fieldErrorf(fmt.Sprintf("exec.allow[%d][%d]", i, j), "empty argument")
			}
		}
	}
	if c.Exec.MaxOutputBytes < 0 {
		return fieldErrorf("exec.maxOutputBytes", "%d is negative", c.Exec.MaxOutputBytes)
	}
	return c.Serve.validate()
}
