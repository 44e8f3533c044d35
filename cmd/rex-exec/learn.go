//go:build !rexthin

package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/rex-sh/rex/broker"
	"github.com/rex-sh/rex/ipc"
)

// learnRun runs a script in standalone mode with every operation allowed
// and recorded, prints the result as usual, and writes the least policy
// permitting what the run did to --learn-out (else stderr). The policy is
// written even when the script failed: what it did up to the failure is
// what a first policy needs.
func learnRun(o *options, scriptPath string, stdin io.Reader, stdout, stderr io.Writer) int {
	if o.policy == "" || o.socket != "" {
		fmt.Fprintln(stderr, "rex-exec: --learn needs standalone mode (--policy) and no --socket: the daemon never runs scripts unchecked")
		return 2
	}
	o.engine.learner = broker.NewLearner()
	res := execute(o, scriptPath, stdin)
	printResult(stdout, o.output, res)
	name := scriptPath
	if name == "-" {
		name = "stdin.risor"
	}
	pol := broker.LearnedPolicy(name, time.Now(), o.engine.learner.Requests())
	if o.learnOut == "" {
		fmt.Fprint(stderr, pol)
		return ipc.ExitCode(res)
	}
	if err := os.WriteFile(o.learnOut, []byte(pol), 0o644); err != nil {
		fmt.Fprintf(stderr, "rex-exec: --learn-out: %v\n", err)
		return 1
	}
	return ipc.ExitCode(res)
}
