// Command spinbook-agent is what runs inside every server: it starts
// Jupyter, serves the front door and the health port, and saves the work
// on stop. Backends copy it into containers and pods (named spinbook there,
// so that the command lines they run stay those of `spinbook agent`); no
// person needs to run it. It imports none of the cloud or cluster clients
// the spinbook command line uses (see depsguard_test.go).
package main

import (
	"os"

	"github.com/spinbook/spinbook/internal/agentcmd"
)

func main() {
	os.Exit(agentcmd.Main(os.Args[1:]))
}
