package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

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
	if f, ok := e.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(e.stderr, "Password: ")
		a, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(e.stderr)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		fmt.Fprint(e.stderr, "Again:    ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(e.stderr)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		if string(a) != string(b) {
			return "", usagef("the two passwords differ; run it again")
		}
		return string(a), nil
	}
	line, err := bufio.NewReader(e.stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", usagef("no password on stdin: pipe one in, or run in a terminal to be prompted")
	}
	return line, nil
}
