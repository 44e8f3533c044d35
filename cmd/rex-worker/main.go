// Command rex-worker is the sandboxed process that runs one Risor script.
// rex-broker starts it in fresh namespaces with the broker socket on fd 3;
// it locks itself down in two stages (see package worker) before reading
// the script from stdin, and writes the result to stdout.
//
// It must be linked statically: after stage one there is no filesystem,
// hence no dynamic loader.
//
// Trust: untrusted after lockdown; its inputs come from the broker, its
// script from an AI agent.
package main

import (
	"os"

	"github.com/rex-sh/rex/worker"
)

func main() {
	os.Exit(worker.Main(os.Args, run))
}
