package server

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"sync"
	"time"

	"github.com/kdfir/kdfir/internal/auth"
)

// maxReplays bounds the answers remembered at once (each holds a body,
// up to runcommand's capped output).
const maxReplays = 1000

// timeNow is the clock, for SAS expiry checks.
var timeNow = time.Now

// replays remembers answers, so that a client that retries (a Logic App
// retries a 5xx or a timeout up to four times) gets the first answer
// instead of running the action again. A request is the same when it comes
// with the same key and the same x-ms-client-tracking-id or
// Idempotency-Key header, or, without either, the same key and body. A
// request that arrives while its twin still runs waits for its answer.
type replays struct {
	mu      sync.Mutex
	entries map[string]*replay
}

type replay struct {
	done   chan struct{}
	at     time.Time
	code   int
	header http.Header
	body   []byte
}

// recorder captures an answer while passing it on.
type recorder struct {
	http.ResponseWriter
	code int
	body bytes.Buffer
}

func (r *recorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	r.body.Write(b)
	return r.ResponseWriter.Write(b)
}

// idempotent runs h once per distinct request within the window, and
// replays its answer to repeats. 503 answers (nothing was done; retry
// later) are not remembered.
func (s *Server) idempotent(w http.ResponseWriter, r *http.Request, key *auth.Key, body []byte, h func(http.ResponseWriter)) {
	window := s.IdempotencyWindow
	if window <= 0 {
		window = 10 * time.Minute
	}
	id := r.Header.Get("x-ms-client-tracking-id")
	if id == "" {
		id = r.Header.Get("Idempotency-Key")
	}
	sum := sha256.New()
	// The route is matched without regard to case, so the path is not
	// part of the key: one endpoint, one namespace of requests.
	sum.Write([]byte(key.Name + "\x00"))
	if id != "" {
		sum.Write([]byte("id\x00" + id))
	} else {
		sum.Write([]byte("body\x00"))
		sum.Write(body)
	}
	k := hex.EncodeToString(sum.Sum(nil))

	s.replays.mu.Lock()
	if s.replays.entries == nil {
		s.replays.entries = map[string]*replay{}
	}
	now := time.Now()
	for ek, e := range s.replays.entries {
		select {
		case <-e.done:
			if now.Sub(e.at) > window {
				delete(s.replays.entries, ek)
			}
		default:
		}
	}
	if e, ok := s.replays.entries[k]; ok {
		s.replays.mu.Unlock()
		select {
		case <-e.done:
		case <-r.Context().Done():
			return
		}
		if e.code != 0 {
			for name, v := range e.header {
				w.Header()[name] = v
			}
			w.Header().Set("Idempotent-Replayed", "true")
			w.WriteHeader(e.code)
			_, _ = w.Write(e.body)
			return
		}
		// The first one was not remembered (a 503): run this one.
		s.idempotent(w, r, key, body, h)
		return
	}
	if len(s.replays.entries) >= maxReplays {
		// Full (a flood within the window): answer without remembering.
		s.replays.mu.Unlock()
		h(w)
		return
	}
	e := &replay{done: make(chan struct{}), at: now}
	s.replays.entries[k] = e
	s.replays.mu.Unlock()

	rec := &recorder{ResponseWriter: w}
	defer func() {
		s.replays.mu.Lock()
		if rec.code == 0 || rec.code == http.StatusServiceUnavailable {
			delete(s.replays.entries, k)
		} else {
			e.code, e.header, e.body, e.at = rec.code, w.Header().Clone(), rec.body.Bytes(), time.Now()
		}
		s.replays.mu.Unlock()
		close(e.done)
	}()
	h(rec)
}
