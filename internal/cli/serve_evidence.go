package cli

import (
	"fmt"

	"github.com/kdfir/kdfir/internal/config"
	"github.com/kdfir/kdfir/internal/evidence"
)

// evidenceStores opens the configured evidence destinations, and the local
// roots as root-1, root-2, ..., for the console's Evidence page.
func evidenceStores(c *config.Config) (map[string]evidence.Sink, error) {
	out := map[string]evidence.Sink{}
	for name, dest := range c.Evidence.Destinations {
		sink, err := evidence.OpenDest(dest)
		if err != nil {
			return nil, fmt.Errorf("evidence destination %s: %w", name, err)
		}
		out[name] = sink
	}
	for i, root := range c.Evidence.LocalRoots {
		sink, err := evidence.NewDir(root)
		if err != nil {
			return nil, fmt.Errorf("evidence.localRoots[%d]: %w", i, err)
		}
		out[fmt.Sprintf("root-%d", i+1)] = sink
	}
	return out, nil
}
