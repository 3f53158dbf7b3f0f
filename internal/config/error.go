package config

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// An Error is a configuration that cannot be used. It lists every problem
// found, by line:
//
//	invalid configuration in spinbook.yaml:
//	  line 4: access.allow[1]: "10.0.0.300/8" is not an IP address or CIDR (example: 203.0.113.0/24)
//	  line 9: local.ports: "8900-8800": the first port must not exceed the last
type Error struct {
	// File is the file's name as given to Load or Parse; "" when the
	// configuration did not come from a file.
	File string
	// Problems are sorted by line.
	Problems []Problem
}

func newError(file string, problems []Problem) *Error {
	slices.SortStableFunc(problems, func(a, b Problem) int { return cmp.Compare(a.Line, b.Line) })
	return &Error{File: file, Problems: problems}
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("invalid configuration")
	if e.File != "" {
		b.WriteString(" in ")
		b.WriteString(e.File)
	}
	b.WriteString(":")
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.Error())
	}
	return b.String()
}

// Unwrap returns the problems, each an error, for errors.As.
func (e *Error) Unwrap() []error {
	errs := make([]error, len(e.Problems))
	for i := range e.Problems {
		errs[i] = &e.Problems[i]
	}
	return errs
}

// A Problem is one thing wrong with a configuration.
type Problem struct {
	// Line is the line in the file, from 1; 0 when the value did not come
	// from the file or the line is unknown.
	Line int
	// Path is the key's YAML path, such as "access.allow[1]"; "" when the
	// problem is with the file as a whole.
	Path string
	// Message says what is wrong and, where it can, how to fix it.
	Message string
}

// Error formats p as "line 4: access.allow[1]: message", leaving out the
// line and the path when they are not known.
func (p *Problem) Error() string {
	var b strings.Builder
	if p.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", p.Line)
	}
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parserMessages are the errors of yaml's parser, as opposed to its
// scanner. yaml.v3 numbers their lines from 0 (and leaves line 0 out),
// while it numbers scanner errors from 1 (leaving out only line 1).
var parserMessages = []string{
	"did not find expected ',' or ']'",
	"did not find expected ',' or '}'",
	"did not find expected '-' indicator",
	"did not find expected <document start>",
	"did not find expected <stream-start>",
	"did not find expected key",
	"did not find expected node content",
	"found duplicate %TAG directive",
	"found duplicate %YAML directive",
	"found incompatible YAML document",
	"found undefined tag handle",
}

// syntaxProblem turns an error from the YAML parser into a Problem, with
// the line corrected and a hint for the usual mistakes.
func syntaxProblem(err error, data []byte) Problem {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	switch {
	case slices.Contains(parserMessages, msg):
		line++
	case line == 0 && scannerMessage(msg):
		line = 1
	}

	p := Problem{Line: line, Message: "YAML syntax: " + msg}
	switch {
	case strings.Contains(msg, "tab") || (line > 0 && tabIndented(data, line)):
		p.Message += " (indent with spaces, not tabs)"
	case msg == "mapping values are not allowed in this context":
		p.Message += ` (quote a value that contains ": ")`
	case msg == "did not find expected key":
		p.Message += " (check the indentation)"
	}
	return p
}

// scannerMessage reports whether msg comes from yaml's scanner, whose
// errors without a line are on line 1.
func scannerMessage(msg string) bool {
	for _, prefix := range []string{"found ", "did not find ", "could not find ", "mapping ", "block sequence "} {
		if strings.HasPrefix(msg, prefix) {
			return true
		}
	}
	return false
}

// tabIndented reports whether line n of data (from 1) is indented with a tab.
func tabIndented(data []byte, n int) bool {
	lines := strings.Split(string(data), "\n")
	if n > len(lines) {
		return false
	}
	l := lines[n-1]
	indent := l[:len(l)-len(strings.TrimLeft(l, " \t"))]
	return strings.Contains(indent, "\t")
}
