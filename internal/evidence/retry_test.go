package evidence

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestRetry(t *testing.T) {
	b := backoff{attempts: 3, base: time.Millisecond, max: 2 * time.Millisecond}
	pods := schema.GroupResource{Resource: "pods"}
	for _, tc := range []struct {
		err       error
		wantCalls int
	}{
		{apierrors.NewServiceUnavailable("busy"), 3},
		{apierrors.NewTooManyRequests("slow down", 1), 3},
		{fmt.Errorf("read log: %w", io.ErrUnexpectedEOF), 3},
		{&StorageError{StatusCode: 503}, 3},
		{&StorageError{StatusCode: 403}, 1},
		{apierrors.NewForbidden(pods, "web", errors.New("no")), 1},
		{apierrors.NewNotFound(pods, "web"), 1},
		{context.Canceled, 1},
	} {
		calls := 0
		err := b.retry(context.Background(), func(context.Context) error { calls++; return tc.err })
		if !errors.Is(err, tc.err) || calls != tc.wantCalls {
			t.Errorf("%v: %d calls, err %v; want %d calls", tc.err, calls, err, tc.wantCalls)
		}
	}
	calls := 0
	err := b.retry(context.Background(), func(context.Context) error {
		calls++
		if calls < 2 {
			return io.ErrUnexpectedEOF
		}
		return nil
	})
	if err != nil || calls != 2 {
		t.Errorf("transient then success: %d calls, %v", calls, err)
	}
}
