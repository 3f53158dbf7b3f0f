package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/spinbook/spinbook/internal/secret"
)

// minPasswordLen keeps a typed password above trivially guessable lengths;
// the front door also rate-limits guesses.
const minPasswordLen = 8

func newPassword(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "password",
		Short: "Hash a password for access.password_hash in the config",
		Long: `Read a password (twice on a terminal, once from a pipe) and print its argon2id
hash. Put the hash in the config as access.password_hash; the password itself is
never stored anywhere.`,
		Example: `  spinbook password                          # prompts twice
  printf '%s' "$PW" | spinbook password      # from a pipe, for scripts`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pw, err := e.readPassword()
			if err != nil {
				return err
			}
			if len([]rune(pw)) < minPasswordLen {
				return usagef("the password is too short: use at least %d characters", minPasswordLen)
			}
			hash, err := secret.HashPassword(pw)
			if err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, hash)
			return nil
		},
	}
}

// readPassword reads twice without echo from a terminal, else one line
// from stdin.
func (e *env) readPassword() (string, error) {
	a, err := e.readSecret("Password: ", "password")
	if _, tty := e.stdinTerminal(); err != nil || !tty {
		return a, err
	}
	b, err := e.readSecret("Again:    ", "password")
	if err != nil {
		return "", err
	}
	if a != b {
		return "", usagef("the two passwords differ; run it again")
	}
	return a, nil
}
