package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/kdfir/kdfir/internal/version"
)

func newVersionCmd(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and Go version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := version.Get()
			return render(g.Stdout, g.Output, v, func(w io.Writer) {
				fmt.Fprintf(w, "version\t%s\ncommit\t%s\ngo\t%s\nplatform\t%s\n", v.Version, v.Commit, v.GoVersion, v.Platform)
			})
		},
	}
}
