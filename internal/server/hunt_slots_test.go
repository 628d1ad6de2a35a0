package server

import (
	"net/http/httptest"
	"testing"
)

// Past maxHunts at once, a hunt is refused with 429 and Retry-After, and a
// finished one frees its slot.
func TestHuntSlots(t *testing.T) {
	var h huntSlots
	for i := range maxHunts {
		if !h.acquire(httptest.NewRecorder()) {
			t.Fatalf("hunt %d refused", i+1)
		}
	}
	rec := httptest.NewRecorder()
	if h.acquire(rec) || rec.Code != 429 || rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("hunt %d: %d %v, want 429 with Retry-After", maxHunts+1, rec.Code, rec.Header())
	}
	h.release()
	if !h.acquire(httptest.NewRecorder()) {
		t.Fatal("a freed slot is not taken")
	}
}
