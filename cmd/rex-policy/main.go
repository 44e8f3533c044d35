// Command rex-policy is the operators' tool for rex's Cedar policies: it
// validates policy files against the schema the broker uses, prints that
// schema, and runs policy test files (see test.go for their format).
//
// Trust: runs as the invoking operator with no privileges of its own; its
// inputs are the operator's policy files.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"

	"github.com/rex-sh/rex/authz"
)

const usage = `usage:
  rex-policy validate FILE|DIR...   parse and validate policies against the schema
  rex-policy schema                 print the Cedar schema
  rex-policy test FILE...           run policy test cases
`

// Exit codes: 0 success, 1 internal error or a failed test, 2 usage or
// validation error (including a test file that cannot be run).
const (
	exitOK       = 0
	exitInternal = 1
	exitFail     = 1
	exitInvalid  = 2
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitInvalid
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "validate":
		return validate(rest, stdout, stderr)
	case "schema":
		if len(rest) != 0 {
			fmt.Fprint(stderr, usage)
			return exitInvalid
		}
		fmt.Fprint(stdout, authz.SchemaText())
		return exitOK
	case "test":
		return testCmd(rest, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "rex-policy: unknown command %q\n%s", cmd, usage)
		return exitInvalid
	}
}

func validate(paths []string, stdout, stderr io.Writer) int {
	if len(paths) == 0 {
		fmt.Fprint(stderr, usage)
		return exitInvalid
	}
	set, err := authz.LoadPath(paths...)
	var le *authz.LoadError
	switch {
	case errors.As(err, &le):
		for _, p := range le.Problems {
			fmt.Fprintln(stderr, p)
		}
		return exitInvalid
	case err != nil:
		fmt.Fprintln(stderr, "rex-policy:", err)
		return exitInternal
	}
	for _, id := range set.IDs() {
		if fallbackID.MatchString(id) {
			fmt.Fprintf(stderr, "%s:1: warning: policy has no @id; audit records and denials will name it %q, which changes when lines move\n", id, id)
		}
	}
	fmt.Fprintf(stdout, "ok: %d policies\n", set.Len())
	return exitOK
}

// fallbackID matches the id authz gives a policy without @id: file:line.
var fallbackID = regexp.MustCompile(`\.cedar:\d+$`)
