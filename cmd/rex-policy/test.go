package main

import (
	"fmt"
	"io"

	"github.com/rex-sh/rex/authz/policytest"
)

func testCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitInvalid
	}
	var pass, fail int
	for _, name := range args {
		p, f, err := runTestFile(name, stdout)
		pass += p
		fail += f
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", name, err)
			return exitInvalid
		}
	}
	fmt.Fprintf(stdout, "%d passed, %d failed\n", pass, fail)
	if fail > 0 {
		return exitFail
	}
	return exitOK
}

// runTestFile prints one line per request of the test file at name.
func runTestFile(name string, out io.Writer) (pass, fail int, err error) {
	results, err := policytest.Run(name)
	for _, r := range results {
		if len(r.Problems) == 0 {
			pass++
			fmt.Fprintf(out, "PASS %s: %s\n", name, r.Name)
			continue
		}
		fail++
		fmt.Fprintf(out, "FAIL %s: %s\n", name, r.Name)
		for _, p := range r.Problems {
			fmt.Fprintf(out, "     %s\n", p)
		}
	}
	return pass, fail, err
}
