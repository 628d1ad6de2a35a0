package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/kdfir/kdfir/internal/alert"
	"github.com/kdfir/kdfir/internal/auth"
)

// feed fans alert events out to the clients of GET /v1/alerts/events
// (server-sent events), so a queue updates live when the audit webhook or
// POST /v1/alerts brings an alert, or an analyst triages one.
type feed struct {
	mu     sync.Mutex
	subs   map[chan feedEvent]struct{}
	closed bool
}

type feedEvent struct {
	kind string // alert (new) or triage (changed)
	id   string
	// data is the alert as JSON, taken when it was published: the
	// publisher goes on changing the alert (its playbooks' actions).
	data []byte
}

// subscribe returns a channel of events and a function that ends the
// subscription.
func (f *feed) subscribe() (<-chan feedEvent, func()) {
	ch := make(chan feedEvent, 64)
	f.mu.Lock()
	if f.subs == nil {
		f.subs = map[chan feedEvent]struct{}{}
	}
	if f.closed {
		close(ch)
	} else {
		f.subs[ch] = struct{}{}
	}
	f.mu.Unlock()
	return ch, func() {
		f.mu.Lock()
		if _, ok := f.subs[ch]; ok {
			delete(f.subs, ch)
			close(ch)
		}
		f.mu.Unlock()
	}
}

// publish never blocks: a client too slow to keep 64 events is dropped,
// and reconnects (EventSource does so by itself).
func (f *feed) publish(kind string, a *alert.Alert) {
	b, err := json.Marshal(a)
	if err != nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for ch := range f.subs {
		select {
		case ch <- feedEvent{kind: kind, id: a.ID, data: b}:
		default:
			delete(f.subs, ch)
			close(ch)
		}
	}
}

// CloseStreams ends every event stream, now and from now on, so that a
// graceful shutdown does not wait on them (register it with
// http.Server.RegisterOnShutdown).
func (s *Server) CloseStreams() {
	s.feed.mu.Lock()
	defer s.feed.mu.Unlock()
	s.feed.closed = true
	for ch := range s.feed.subs {
		delete(s.feed.subs, ch)
		close(ch)
	}
}

// feedHeartbeat keeps idle connections (and proxies) open.
const feedHeartbeat = 15 * time.Second

func (s *Server) alertEvents(w http.ResponseWriter, r *http.Request, _ *auth.Key) {
	rc := http.NewResponseController(w)
	// The server's read timeout must not end a long-lived stream.
	_ = rc.SetReadDeadline(time.Time{})
	ch, done := s.feed.subscribe()
	defer done()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, ": kdfir alert events\n\n")
	if err := rc.Flush(); err != nil {
		return
	}
	tick := time.NewTicker(feedHeartbeat)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
			fmt.Fprint(w, ": keep-alive\n\n")
		case ev, ok := <-ch:
			if !ok {
				return // too slow: the client reconnects
			}
			fmt.Fprintf(w, "event: %s\nid: %s\ndata: %s\n\n", ev.kind, ev.id, ev.data)
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}
