package models

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxNameLen is the longest model name, in bytes. S3 keys may be 1024
// bytes; this leaves room for the store's prefix.
const MaxNameLen = 512

// ErrInvalidName means a model name (or a list prefix) was refused.
var ErrInvalidName = errors.New("invalid model name")

// ValidateName checks that name can name a model in any store: 1 to
// MaxNameLen bytes of UTF-8, segments separated by single slashes, no
// leading or trailing slash, no empty, "." or ".." segment, no segment
// starting with "." (the file store keeps its own files there), and no
// control character (NUL and newline included) or backslash anywhere.
// A valid name can never leave the store's directory or prefix.
func ValidateName(name string) error {
	if msg := checkName(name, false); msg != "" {
		return fmt.Errorf("%w %s: %s", ErrInvalidName, quoteName(name), msg)
	}
	return nil
}

// ValidatePrefix checks a prefix for `ls`: "" (everything), or the start
// of a name, which may end with a slash.
func ValidatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if msg := checkName(prefix, true); msg != "" {
		return fmt.Errorf("%w prefix %s: %s", ErrInvalidName, quoteName(prefix), msg)
	}
	return nil
}

func checkName(name string, prefix bool) string {
	switch {
	case name == "":
		return "empty; give a name such as team/churn/model-v3.pkl"
	case len(name) > MaxNameLen:
		return fmt.Sprintf("longer than %d bytes", MaxNameLen)
	case !utf8.ValidString(name):
		return "not valid UTF-8"
	case strings.HasPrefix(name, "/"):
		return "starts with /; names are relative to the store (team/model.pkl)"
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return "contains a control character"
		}
		if r == '\\' {
			return "contains a backslash; separate parts with /"
		}
	}
	if prefix {
		name = strings.TrimSuffix(name, "/")
	}
	for seg := range strings.SplitSeq(name, "/") {
		switch {
		case seg == "":
			return "has an empty part (// or a trailing /)"
		case seg == "." || seg == "..":
			return "has a . or .. part"
		case strings.HasPrefix(seg, "."):
			return "has a part starting with . (hidden names are reserved)"
		}
	}
	return ""
}

// quoteName quotes a name for an error message, shortened when long.
func quoteName(name string) string {
	if len(name) > 80 {
		name = name[:80] + "…"
	}
	return fmt.Sprintf("%q", name)
}
