package config

import (
	"fmt"
	"strconv"
)

// maxUserLen keeps user names short enough for every name built from them
// (directories, containers, CloudFormation stacks, git branches).
const maxUserLen = 28

// ValidateUser checks a user name (--user, $SPINBOOK_USER): 1 to 28
// lowercase letters, digits and '-', starting and ending with a letter or
// digit. User names become directories, containers, stacks and branches.
func ValidateUser(name string) error {
	if !validUser(name) {
		shown := strconv.Quote(name)
		if len(name) > 64 {
			shown = strconv.Quote(name[:64]) + "..."
		}
		return fmt.Errorf("invalid user name %s: use 1 to %d lowercase letters, digits and '-', starting and ending with a letter or digit", shown, maxUserLen)
	}
	return nil
}

func validUser(name string) bool {
	if len(name) < 1 || len(name) > maxUserLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case c == '-' && i > 0 && i < len(name)-1:
		default:
			return false
		}
	}
	return true
}
