package evidence

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"syscall"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// backoff is how retry waits: base, doubled each attempt up to max, with
// jitter, for at most attempts tries.
type backoff struct {
	attempts int
	base     time.Duration
	max      time.Duration
}

var defaultBackoff = backoff{attempts: 4, base: 500 * time.Millisecond, max: 8 * time.Second}

// retry runs fn until it succeeds, fails with an error that is not
// transient, or has been tried b.attempts times.
func (b backoff) retry(ctx context.Context, fn func(ctx context.Context) error) error {
	delay := b.base
	for attempt := 1; ; attempt++ {
		err := fn(ctx)
		if err == nil || attempt >= b.attempts || !transient(err) || ctx.Err() != nil {
			return err
		}
		wait := delay/2 + rand.N(delay/2+1)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		delay = min(2*delay, b.max)
	}
}

// transient tells whether an error may go away when the request is tried
// again: throttling, server errors and timeouts from the API server,
// dropped connections, and storage errors with a 5xx or 429 status.
func transient(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if apierrors.IsTooManyRequests(err) || apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) ||
		apierrors.IsInternalError(err) || apierrors.IsServiceUnavailable(err) || apierrors.IsUnexpectedServerError(err) {
		return true
	}
	var se *StorageError
	if errors.As(err, &se) {
		return se.StatusCode == 429 || se.StatusCode >= 500
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
