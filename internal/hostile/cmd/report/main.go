// Command report turns `go test -json` output of the hostile suite into the
// table of `make hostile`: id | attack | expected | observed | result, one
// row per attack of SECURITY-TESTS.md. Rows come from the HOSTILE lines
// tests log (testutil.Hostile); the result is the test's own pass/fail, so a
// row can only say PASS when a test that could fail passed. It exits 1 on
// any FAIL, SKIP, package failure, or when no row was seen at all.
//
// Trust: test tooling only.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
)

type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

type row struct {
	id, attack, expected, observed string
	test                           string
	result                         string
	failure                        []string
}

// idTest matches tests named after a SECURITY-TESTS id: TestH01_…, TestP09_….
var idTest = regexp.MustCompile(`^Test([A-Z][0-9]{2})_`)

func main() {
	os.Exit(run(os.Stdin, os.Stdout))
}

func run(in io.Reader, out io.Writer) int {
	rows := map[string]*row{} // by package/top-level test
	var order []string
	results := map[string]string{}
	failures := map[string][]string{}
	pkgFailed := []string{}
	pending := map[string]string{}
	get := func(key, test string) *row {
		r, ok := rows[key]
		if !ok {
			r = &row{test: test}
			rows[key] = r
			order = append(order, key)
		}
		return r
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var ev event
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			continue
		}
		top, _, _ := strings.Cut(ev.Test, "/")
		key := ev.Package + "." + top
		switch ev.Action {
		case "output":
			if ev.Test == "" {
				continue
			}
			// test2json splits long lines across events: join them first.
			pending[key] += ev.Output
			if !strings.HasSuffix(pending[key], "\n") {
				continue
			}
			line := strings.TrimRight(pending[key], "\n")
			delete(pending, key)
			if i := strings.Index(line, "HOSTILE\t"); i >= 0 {
				f := strings.Split(line[i:], "\t")
				if len(f) == 5 {
					r := get(key, top)
					r.id, r.attack, r.expected, r.observed = f[1], f[2], f[3], f[4]
				}
				continue
			}
			if s := strings.TrimSpace(line); strings.Contains(s, ".go:") {
				failures[key] = append(failures[key], s)
			}
		case "pass", "fail", "skip":
			if ev.Test == "" {
				if ev.Action == "fail" {
					pkgFailed = append(pkgFailed, ev.Package)
				}
				continue
			}
			if top == ev.Test {
				results[key] = ev.Action
				if m := idTest.FindStringSubmatch(top); m != nil {
					r := get(key, top)
					if r.id == "" {
						r.id = m[1]
					}
				}
			}
		}
	}
	code := 0
	var list []*row
	for _, k := range order {
		r := rows[k]
		switch results[k] {
		case "pass":
			r.result = "PASS"
		case "skip":
			r.result, code = "SKIP", 1
		default:
			r.result, code = "FAIL", 1
			r.failure = failures[k]
		}
		if r.observed == "" {
			// Tests of the end-to-end suite assert without a HOSTILE line:
			// their name says the attack, their assertions the outcome.
			_, name, _ := strings.Cut(r.test, "_")
			r.attack, r.expected = strings.ReplaceAll(name, "_", " "), "as SECURITY-TESTS.md says (asserted by "+r.test+")"
			r.observed = "(test ended before reporting)"
			if r.result == "PASS" {
				r.observed = "held"
			}
		}
		list = append(list, r)
	}
	sort.SliceStable(list, func(i, j int) bool { return list[i].id < list[j].id })
	esc := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	fmt.Fprintln(out, "| id | attack | expected | observed | result |")
	fmt.Fprintln(out, "|---|---|---|---|---|")
	pass := 0
	for _, r := range list {
		fmt.Fprintf(out, "| %s | %s | %s | %s | %s |\n", r.id, esc(r.attack), esc(r.expected), esc(r.observed), r.result)
		if r.result == "PASS" {
			pass++
		}
	}
	for _, r := range list {
		if r.result == "FAIL" {
			fmt.Fprintf(out, "\nFAIL %s (%s):\n", r.id, r.test)
			for _, l := range r.failure {
				if !strings.Contains(l, "HOSTILE") {
					fmt.Fprintln(out, "    "+l)
				}
			}
		}
	}
	for _, p := range pkgFailed {
		fmt.Fprintf(out, "\npackage %s failed\n", p)
		code = 1
	}
	if len(list) == 0 {
		fmt.Fprintln(out, "no hostile test ran")
		code = 1
	}
	fmt.Fprintf(out, "\n%d of %d attacks held\n", pass, len(list))
	return code
}
