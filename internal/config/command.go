package config

import (
	"errors"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// A Command is a program and its arguments. In YAML it is a list of strings
// or one string, which is split on spaces (no quoting).
type Command []string

// UnmarshalYAML accepts a list of strings or one string split on spaces.
func (c *Command) UnmarshalYAML(n *yaml.Node) error {
	n = resolve(n)
	switch {
	case isNull(n):
		*c = nil
	case n.Kind == yaml.ScalarNode:
		cmd, err := splitCommand(n.Value)
		if err != nil {
			return err
		}
		*c = cmd
	case n.Kind == yaml.SequenceNode:
		cmd := make(Command, 0, len(n.Content))
		for i, item := range n.Content {
			item = resolve(item)
			if item.Kind != yaml.ScalarNode {
				return fmt.Errorf("entry %d: expected a single value, not %s", i, describe(item))
			}
			cmd = append(cmd, item.Value)
		}
		*c = cmd
	default:
		return fmt.Errorf("expected a list or a string, not %s", describe(n))
	}
	return nil
}

// splitCommand splits the one-string form of a Command on spaces. Quotes
// are refused rather than kept in arguments, which would surprise.
func splitCommand(s string) (Command, error) {
	if strings.ContainsAny(s, `"'\`) {
		return nil, errors.New("quotes and backslashes are not supported when the command is one string; write a list instead, such as [jupyter, lab, --notebook-dir=/data/my notebooks]")
	}
	if f := strings.Fields(s); len(f) > 0 {
		return Command(f), nil
	}
	return nil, nil
}
