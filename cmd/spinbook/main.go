// Command spinbook brings up a team member's Jupyter server on demand and
// takes it away again. See README.md, or run `spinbook --help`.
package main

import (
	"os"

	"github.com/spinbook/spinbook/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:]))
}
