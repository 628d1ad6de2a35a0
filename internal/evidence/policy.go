package evidence

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/kdfir/kdfir/internal/config"
)

// Policy says where collections may go, so that a destination is
// configuration and never a caller's free choice. A request picks a
// destination by name, or names one (a directory or a blob container URL)
// that lies under an allowed local root or blob endpoint. Each configured
// destination is itself allowed. Plain http is allowed only to a loopback
// endpoint that is listed; a blob URL without a SAS token is authorized by
// DefaultAzureCredential, and so is allowed only under a listed endpoint.
type Policy struct {
	dests     map[string]string
	endpoints []*url.URL // scheme, host and path prefix (account or container)
	roots     []string   // absolute, symlinks resolved
}

// NewPolicy checks and compiles the configured destinations, endpoints
// (https://ACCOUNT.blob.core.windows.net[/CONTAINER], or a path-style
// endpoint such as Azurite's http://127.0.0.1:10000/ACCOUNT[/CONTAINER])
// and local roots.
func NewPolicy(dests map[string]string, endpoints, roots []string) (*Policy, error) {
	p := &Policy{dests: dests}
	for _, e := range endpoints {
		u, err := parseEndpoint(e)
		if err != nil {
			return nil, fmt.Errorf("evidence.allowedEndpoints: %w", err)
		}
		p.endpoints = append(p.endpoints, u)
	}
	for _, r := range roots {
		root, err := resolveRoot(r)
		if err != nil {
			return nil, fmt.Errorf("evidence.localRoots: %w", err)
		}
		p.roots = append(p.roots, root)
	}
	for name, d := range dests {
		switch {
		case strings.HasPrefix(d, "azblob://"), strings.HasPrefix(d, "https://"), strings.HasPrefix(d, "http://"):
			u, err := containerOf(d)
			if err != nil {
				return nil, fmt.Errorf("evidence destination %s: %w", name, err)
			}
			if u.Scheme == "http" && !config.IsLoopbackHost(u.Host) {
				return nil, fmt.Errorf("evidence destination %s: plain http is allowed only to a loopback address", name)
			}
			p.endpoints = append(p.endpoints, u)
		default:
			root, err := resolveRoot(d)
			if err != nil {
				return nil, fmt.Errorf("evidence destination %s: %w", name, err)
			}
			p.roots = append(p.roots, root)
		}
	}
	return p, nil
}

// Named returns the destination configured under name.
func (p *Policy) Named(name string) (string, error) {
	d, ok := p.dests[name]
	if !ok {
		known := make([]string, 0, len(p.dests))
		for k := range p.dests {
			known = append(known, k)
		}
		slices.Sort(known)
		return "", fmt.Errorf("evidence destination %q is not configured (configured: %s)", name, strings.Join(known, ", "))
	}
	return d, nil
}

// Check returns nil when a request may send a collection to dest: a blob
// container URL (azblob:// or http(s)://, with an optional SAS token that
// must be valid and unexpired) under an allowed endpoint, or a directory
// under an allowed root once symlinks are resolved. The error never holds
// the SAS signature.
func (p *Policy) Check(dest string) error {
	switch {
	case strings.HasPrefix(dest, "azblob://"), strings.HasPrefix(dest, "https://"), strings.HasPrefix(dest, "http://"):
		u, err := containerOf(dest)
		if err != nil {
			return err
		}
		if u.Scheme == "http" && !config.IsLoopbackHost(u.Host) {
			return fmt.Errorf("evidence destination %s: plain http is allowed only to a loopback endpoint in evidence.allowedEndpoints", u.Redacted())
		}
		if q, _ := url.Parse(dest); q != nil && q.RawQuery != "" {
			if err := CheckSAS(q.RawQuery, time.Now()); err != nil {
				return err
			}
		}
		for _, e := range p.endpoints {
			if under(u, e) {
				return nil
			}
		}
		return fmt.Errorf("evidence destination %s is not under evidence.allowedEndpoints or a configured destination", u.Redacted())
	case strings.Contains(dest, "://"):
		return fmt.Errorf("evidence destination %q: unsupported scheme (want https://, azblob:// or a directory)", Redact(dest))
	}
	path, err := resolvePath(dest)
	if err != nil {
		return err
	}
	for _, r := range p.roots {
		if within(path, r) {
			return nil
		}
	}
	return fmt.Errorf("evidence directory %s is not under evidence.localRoots or a configured destination", dest)
}

// accountName is a storage account name.
var accountName = regexp.MustCompile(`^[a-z0-9]{3,24}$`)

// AccountURL maps a storage account name to its blob endpoint: the allowed
// endpoint for that account (Azurite, a sovereign cloud), or else
// https://NAME.blob.core.windows.net.
func (p *Policy) AccountURL(account string) (string, error) {
	if !accountName.MatchString(account) {
		return "", fmt.Errorf("storageaccount %q is not a storage account name (3 to 24 lower-case letters and digits)", account)
	}
	for _, e := range p.endpoints {
		if acct, base := accountOf(e); acct == account {
			return base, nil
		}
	}
	return "https://" + account + ".blob.core.windows.net", nil
}

// SplitContainerURL returns the storage account and the container of a
// container URL, path style (Azurite: http://127.0.0.1:10000/ACCOUNT/
// CONTAINER) or host style (https://ACCOUNT.blob.core.windows.net/
// CONTAINER).
func SplitContainerURL(u *url.URL) (account, container string) {
	acct, _ := accountOf(u)
	segs := strings.Split(strings.Trim(u.Path, "/"), "/")
	if pathStyle(u.Host) {
		segs = segs[1:]
	}
	if len(segs) > 0 {
		container = segs[0]
	}
	return acct, container
}

// accountOf returns an endpoint's account and the URL of the account.
func accountOf(u *url.URL) (account, base string) {
	if pathStyle(u.Host) {
		seg, _, _ := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
		return seg, u.Scheme + "://" + u.Host + "/" + seg
	}
	host, _, _ := strings.Cut(u.Hostname(), ".")
	return strings.ToLower(host), u.Scheme + "://" + u.Host
}

// CheckSAS checks a SAS token (a query string, with or without a leading
// "?"): it needs a signature, an expiry in the future, and, when it lists
// permissions, create or write.
func CheckSAS(token string, now time.Time) error {
	q, err := url.ParseQuery(strings.TrimPrefix(token, "?"))
	if err != nil {
		return errors.New("SAS token is not a valid query string")
	}
	if q.Get("sig") == "" {
		return errors.New("SAS token has no signature (sig=)")
	}
	se := q.Get("se")
	if se == "" {
		return errors.New("SAS token has no expiry (se=)")
	}
	exp, ok := parseSASTime(se)
	if !ok {
		return fmt.Errorf("SAS token expiry %q is not a time", se)
	}
	if !exp.After(now) {
		return fmt.Errorf("SAS token expired at %s", exp.Format(time.RFC3339))
	}
	if sp := q.Get("sp"); sp != "" && !strings.ContainsAny(sp, "cw") {
		return fmt.Errorf("SAS token does not allow writing blobs (sp=%s; want c or w)", sp)
	}
	return nil
}

func parseSASTime(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04Z", "2006-01-02T15:04:05Z", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// parseEndpoint reads an allowed endpoint: an account or container URL,
// without a query.
func parseEndpoint(s string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimRight(s, "/"))
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("%q is not an https:// endpoint URL", Redact(s))
	}
	if u.RawQuery != "" || u.User != nil || u.Fragment != "" {
		return nil, fmt.Errorf("%q: an endpoint has no query, user or fragment", Redact(s))
	}
	if u.Scheme == "http" && !config.IsLoopbackHost(u.Host) {
		return nil, fmt.Errorf("%q: plain http is allowed only to a loopback address", s)
	}
	if pathStyle(u.Host) && strings.Trim(u.Path, "/") == "" {
		return nil, fmt.Errorf("%q: a path-style endpoint names its account (http://127.0.0.1:10000/devstoreaccount1)", s)
	}
	u.Host = strings.ToLower(u.Host)
	return u, nil
}

// containerOf returns the container URL of a blob destination, without
// its query and prefix.
func containerOf(dest string) (*url.URL, error) {
	if rest, ok := strings.CutPrefix(dest, "azblob://"); ok {
		acct, path, _ := strings.Cut(rest, "/")
		dest = "https://" + acct + ".blob.core.windows.net/" + path
	}
	u, err := url.Parse(dest)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("invalid blob URL %q", Redact(dest))
	}
	if u.User != nil {
		return nil, fmt.Errorf("blob URL %s carries user information", u.Redacted())
	}
	segs := strings.Split(strings.Trim(u.Path, "/"), "/")
	n := 1
	if pathStyle(u.Host) {
		n = 2
	}
	if len(segs) < n || segs[n-1] == "" {
		return nil, fmt.Errorf("invalid blob URL %s: no container in the path", (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String())
	}
	for _, s := range segs {
		if s == ".." || s == "." {
			return nil, fmt.Errorf("invalid blob URL %s: dot segments", (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String())
		}
	}
	return &url.URL{Scheme: u.Scheme, Host: strings.ToLower(u.Host), Path: "/" + strings.Join(segs[:n], "/")}, nil
}

// under reports whether container u lies under endpoint e: same scheme
// and host, and e's path is a prefix of u's, segment by segment.
func under(u, e *url.URL) bool {
	if u.Scheme != e.Scheme || u.Host != e.Host {
		return false
	}
	ep := strings.Trim(e.Path, "/")
	up := strings.Trim(u.Path, "/")
	return ep == "" || up == ep || strings.HasPrefix(up, ep+"/")
}

// resolveRoot makes a configured directory absolute with its symlinks
// resolved (it is created when missing).
func resolveRoot(dir string) (string, error) {
	if dir == "" {
		return "", errors.New("empty directory")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return "", fmt.Errorf("create %s: %w", abs, err)
	}
	return filepath.EvalSymlinks(abs)
}

// resolvePath makes a requested directory absolute and resolves the
// symlinks of its longest existing ancestor, so that a link inside a root
// that points out of it is seen for what it is.
func resolvePath(dir string) (string, error) {
	if dir == "" {
		return "", errors.New("empty destination")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	rest := ""
	cur := abs
	for {
		if r, err := filepath.EvalSymlinks(cur); err == nil {
			return filepath.Join(r, rest), nil
		}
		parent := filepath.Dir(cur)
		if parent == cur {
			return abs, nil
		}
		rest = filepath.Join(filepath.Base(cur), rest)
		cur = parent
	}
}

func within(path, root string) bool {
	rel, err := filepath.Rel(root, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}
