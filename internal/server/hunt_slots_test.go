package server

import (
	"net/http/httptest"
	"testing"
)

// Past maxHunts at once, a hunt is refused with 429 and Retry-After, a
// finished one frees its slot, and a running one has a deadline.
func TestHuntSlots(t *testing.T) {
	var h huntSlots
	req := httptest.NewRequest("POST", "/v1/hunt", nil)
	var first func()
	for i := range maxHunts {
		ctx, done, ok := h.start(httptest.NewRecorder(), req)
		if !ok {
			t.Fatalf("hunt %d refused", i+1)
		}
		if _, has := ctx.Deadline(); !has {
			t.Fatalf("hunt %d has no deadline", i+1)
		}
		if first == nil {
			first = done
		}
	}
	rec := httptest.NewRecorder()
	if _, _, ok := h.start(rec, req); ok || rec.Code != 429 || rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("hunt %d: %d %v, want 429 with Retry-After", maxHunts+1, rec.Code, rec.Header())
	}
	first()
	if _, _, ok := h.start(httptest.NewRecorder(), req); !ok {
		t.Fatal("a freed slot is not taken")
	}
}
