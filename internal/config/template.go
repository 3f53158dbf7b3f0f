package config

import _ "embed"

// Template is the commented spinbook.yaml that `spinbook init` writes: every
// key with its default and commented examples. It parses to the defaults.
//
//go:embed template.yaml
var Template string
