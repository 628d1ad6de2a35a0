package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/kdfir/kdfir/internal/auth"
	"github.com/kdfir/kdfir/internal/evidence"
)

// maxCollections bounds how many collections GET /v1/evidence lists (the
// newest first).
const maxCollections = 200

// collection is one evidence collection in a configured destination. Its
// ID is the destination's name and the collection's directory,
// "DEST:DIR"; DIR is the last segment of its prefix
// (<UTC timestamp>-<action id>).
type collection struct {
	ID          string             `json:"id"`
	Destination string             `json:"destination"`
	Prefix      string             `json:"prefix"`
	Location    string             `json:"location"`
	Action      string             `json:"action,omitempty"`
	ActionID    string             `json:"actionId,omitempty"`
	Target      evidence.Target    `json:"target"`
	Cluster     string             `json:"cluster,omitempty"`
	Started     time.Time          `json:"started"`
	Finished    time.Time          `json:"finished"`
	Artifacts   int                `json:"artifacts"`
	Failed      int                `json:"failedArtifacts"`
	Signature   *evidence.Report   `json:"signature,omitempty"`
	Manifest    *evidence.Manifest `json:"manifest,omitempty"`
	// Verification is the last full check (POST .../verify), if any.
	Verification *verification `json:"verification"`
	Error        string        `json:"error,omitempty"`

	sink evidence.Sink
}

type verification struct {
	At     time.Time        `json:"at"`
	OK     bool             `json:"ok"`
	Report *evidence.Report `json:"report"`
}

// evidenceCache remembers each destination's listing for a few seconds
// (a blob container is listed whole) and the last verification of each
// collection.
type evidenceCache struct {
	mu       sync.Mutex
	listed   map[string]listing
	verified map[string]*verification
}

type listing struct {
	at       time.Time
	prefixes []string
}

const listingTTL = 5 * time.Second

// prefixes lists the directories that hold a manifest.json in a
// destination, from a listing at most listingTTL old unless fresh.
func (c *evidenceCache) prefixes(ctx context.Context, name string, sink evidence.Sink, fresh bool) ([]string, error) {
	c.mu.Lock()
	l, ok := c.listed[name]
	c.mu.Unlock()
	if ok && !fresh && time.Since(l.at) < listingTTL {
		return l.prefixes, nil
	}
	names, err := sink.List(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range names {
		if n == evidence.ManifestName {
			out = append(out, "")
		} else if dir, ok := strings.CutSuffix(n, "/"+evidence.ManifestName); ok {
			out = append(out, dir)
		}
	}
	c.mu.Lock()
	if c.listed == nil {
		c.listed = map[string]listing{}
	}
	c.listed[name] = listing{at: time.Now(), prefixes: out}
	c.mu.Unlock()
	return out, nil
}

func (c *evidenceCache) verifiedAs(id string) *verification {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.verified[id]
}

func (c *evidenceCache) setVerified(id string, v *verification) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.verified == nil || len(c.verified) > 10000 {
		c.verified = map[string]*verification{}
	}
	c.verified[id] = v
}

func collectionID(dest, prefix string) string {
	if prefix == "" {
		return dest + ":."
	}
	return dest + ":" + path.Base("/"+prefix)
}

// load reads a collection's manifest and checks its signature.
func (s *Server) loadCollection(ctx context.Context, dest, prefix string, sink evidence.Sink) *collection {
	sub := sink
	if prefix != "" {
		sub = sink.Sub(prefix)
	}
	c := &collection{ID: collectionID(dest, prefix), Destination: dest, Prefix: prefix, Location: evidence.Redact(sub.String()), sink: sub}
	rep, m, err := evidence.CheckSignature(ctx, sub, s.EvidenceKey)
	if err != nil {
		c.Error = evidence.Redact(err.Error())
		return c
	}
	c.Signature = rep
	if m != nil {
		c.Manifest = m
		c.Action, c.ActionID, c.Target, c.Cluster = m.Action, m.ActionID, m.Target, m.Cluster.Name
		c.Started, c.Finished = m.Started, m.Finished
		for _, a := range m.Artifacts {
			if a.Error != "" {
				c.Failed++
			} else {
				c.Artifacts++
			}
		}
	}
	c.Verification = s.collections.verifiedAs(c.ID)
	return c
}

func (s *Server) evidenceNames() []string {
	names := make([]string, 0, len(s.EvidenceStores))
	for n := range s.EvidenceStores {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

type destinationStatus struct {
	Name     string `json:"name"`
	Location string `json:"location"`
	Error    string `json:"error,omitempty"`
}

// listEvidence is GET /v1/evidence: the collections in every configured
// destination, newest first, each with its manifest's summary and its
// signature's status.
func (s *Server) listEvidence(w http.ResponseWriter, r *http.Request, k *auth.Key) {
	ctx := r.Context()
	type found struct{ dest, prefix string }
	var all []found
	dests := []destinationStatus{}
	for _, name := range s.evidenceNames() {
		sink := s.EvidenceStores[name]
		st := destinationStatus{Name: name, Location: evidence.Redact(sink.String())}
		prefixes, err := s.collections.prefixes(ctx, name, sink, true)
		if err != nil {
			st.Error = evidence.Redact(err.Error())
		}
		for _, p := range prefixes {
			all = append(all, found{name, p})
		}
		dests = append(dests, st)
	}
	// The directory starts with the collection's UTC time.
	sort.SliceStable(all, func(i, j int) bool { return path.Base("/"+all[i].prefix) > path.Base("/"+all[j].prefix) })
	if len(all) > maxCollections {
		all = all[:maxCollections]
	}
	out := make([]*collection, len(all))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, f := range all {
		g.Go(func() error {
			c := s.loadCollection(gctx, f.dest, f.prefix, s.EvidenceStores[f.dest])
			c.Manifest = nil // the list has the summary; GET /v1/evidence/{id} the manifest
			out[i] = c
			return nil
		})
	}
	_ = g.Wait()
	visible := out[:0]
	for _, c := range out {
		if s.mayRead(k, c) {
			visible = append(visible, c)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"collections": visible, "destinations": dests})
}

// mayRead reports whether k may see collection c: a key bound to a
// cluster sees only that cluster's collections (and none whose manifest
// does not say which cluster it came from).
func (s *Server) mayRead(k *auth.Key, c *collection) bool {
	return k == nil || k.Cluster == "" || (c.Cluster != "" && s.sameCluster(k.Cluster, c.Cluster))
}

// findCollection resolves an ID to one of the collections listed in its
// destination that k may see, so no ID can name anything else.
func (s *Server) findCollection(w http.ResponseWriter, r *http.Request, k *auth.Key) *collection {
	id := r.PathValue("id")
	dest, dir, ok := strings.Cut(id, ":")
	sink := s.EvidenceStores[dest]
	if !ok || sink == nil || dir == "" {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no evidence collection %q", id))
		return nil
	}
	// A cached listing first; a collection written since needs a fresh
	// one.
	for _, fresh := range []bool{false, true} {
		prefixes, err := s.collections.prefixes(r.Context(), dest, sink, fresh)
		if err != nil {
			writeError(w, http.StatusBadGateway, "list evidence destination "+dest+": "+evidence.Redact(err.Error()))
			return nil
		}
		for _, p := range prefixes {
			if collectionID(dest, p) != id {
				continue
			}
			if c := s.loadCollection(r.Context(), dest, p, sink); s.mayRead(k, c) {
				return c
			}
			writeError(w, http.StatusNotFound, fmt.Sprintf("no evidence collection %q", id))
			return nil
		}
	}
	writeError(w, http.StatusNotFound, fmt.Sprintf("no evidence collection %q", id))
	return nil
}

// getEvidence is GET /v1/evidence/{id}: the collection with its manifest.
func (s *Server) getEvidence(w http.ResponseWriter, r *http.Request, k *auth.Key) {
	if c := s.findCollection(w, r, k); c != nil {
		writeJSON(w, http.StatusOK, c)
	}
}

// evidenceArtifact is GET /v1/evidence/{id}/artifacts/{name...}: one
// artifact the manifest lists (or the manifest and its signature),
// streamed.
func (s *Server) evidenceArtifact(w http.ResponseWriter, r *http.Request, k *auth.Key) {
	c := s.findCollection(w, r, k)
	if c == nil {
		return
	}
	name := r.PathValue("name")
	var art *evidence.Artifact
	if c.Manifest != nil {
		for i, a := range c.Manifest.Artifacts {
			if a.Path == name && a.Error == "" {
				art = &c.Manifest.Artifacts[i]
			}
		}
	}
	if art == nil && name != evidence.ManifestName && name != evidence.SignatureName {
		writeError(w, http.StatusNotFound, fmt.Sprintf("collection %s lists no artifact %q", c.ID, name))
		return
	}
	rc, err := c.sink.Open(r.Context(), name)
	if errors.Is(err, fs.ErrNotExist) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("artifact %q of %s is missing", name, c.ID))
		return
	}
	if err != nil {
		writeError(w, http.StatusBadGateway, "read "+name+": "+evidence.Redact(err.Error()))
		return
	}
	defer rc.Close()
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": path.Base(name)}))
	h.Set("Cache-Control", "no-store")
	if art != nil {
		h.Set("X-Kdfir-SHA256", art.SHA256)
	}
	_, _ = io.Copy(w, rc)
}

// verifyEvidence is POST /v1/evidence/{id}/verify: every artifact's size
// and hash and the signature, checked now.
func (s *Server) verifyEvidence(w http.ResponseWriter, r *http.Request, k *auth.Key) {
	c := s.findCollection(w, r, k)
	if c == nil {
		return
	}
	rep, err := evidence.Verify(r.Context(), c.sink, s.EvidenceKey)
	if err != nil {
		writeError(w, http.StatusBadGateway, "verify "+c.ID+": "+evidence.Redact(err.Error()))
		return
	}
	v := &verification{At: time.Now().UTC(), OK: rep.OK(), Report: rep}
	s.collections.setVerified(c.ID, v)
	writeJSON(w, http.StatusOK, v)
}
