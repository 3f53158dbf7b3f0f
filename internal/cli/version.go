package cli

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/spinbook/spinbook/internal/buildinfo"
)

func version() string { return buildinfo.String() }

func newVersion(e *env) *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print spinbook's version",
		Example: "  spinbook version",
		Args:    cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			fmt.Fprintf(e.stdout, "spinbook %s (%s, %s/%s)\n", version(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}
}
