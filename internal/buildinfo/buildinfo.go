// Package buildinfo holds the version both binaries print, stamped at
// build time by scripts/build:
//
//	-ldflags "-X github.com/spinbook/spinbook/internal/buildinfo.Version=v1.2.3"
package buildinfo

import "runtime/debug"

// Version is set at build time; "" in a development build.
var Version = ""

// String is Version, else the module version go install recorded, else "dev".
func String() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
