package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/spf13/cobra"

	"github.com/spinbook/spinbook/internal/config"
)

func newInit(e *env) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Write a commented spinbook.yaml to start from",
		Long: `Write a commented config file (./spinbook.yaml, or the --config path) with
every key, its default and an example. Edit it, then run ` + "`spinbook up`" + `.
An existing file is never overwritten unless you pass --force.`,
		Example: `  spinbook init
  spinbook init --config ~/.config/spinbook/config.yaml`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			path := e.configPath
			if path == "" {
				path = "spinbook.yaml"
			}
			flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
			if force {
				flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
			}
			f, err := os.OpenFile(path, flags, 0o644)
			if errors.Is(err, fs.ErrExist) {
				return usagef("%s already exists; edit it, or pass --force to replace it", path)
			}
			if err != nil {
				return fmt.Errorf("init: %w", err)
			}
			if _, err := f.WriteString(config.Template); err != nil {
				f.Close()
				return fmt.Errorf("init: %w", err)
			}
			if err := f.Close(); err != nil {
				return fmt.Errorf("init: %w", err)
			}
			fmt.Fprintf(e.stdout, "wrote %s; edit it, then run `spinbook up`\n", path)
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing file")
	return cmd
}
