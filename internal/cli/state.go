package cli

import (
	"context"
	"os"
	"os/user"
	"path/filepath"

	"github.com/kdfir/kdfir/internal/journal"
)

// openJournal opens the action journal in the data directory.
func (g *Globals) openJournal(ctx context.Context) (*journal.Journal, error) {
	dir, err := g.dataDir()
	if err != nil {
		return nil, err
	}
	return journal.Open(ctx, filepath.Join(dir, "journal.db"))
}

// actor is who runs the command: the OS user, as user@host.
func actor() string {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	if h, err := os.Hostname(); err == nil {
		name += "@" + h
	}
	return name
}
