// Command cmdbench times whole commands against a baseline measured in the
// same run: the two alternate, so machine noise hits both alike, and it
// prints the medians and their ratio.
//
//	cmdbench -n 50 -name hello -target 1.5 -- REX COMMAND... -- BASELINE COMMAND...
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"time"
)

func main() {
	n := flag.Int("n", 30, "runs of each command")
	name := flag.String("name", "workload", "name printed in the table")
	target := flag.Float64("target", 0, "target ratio (rex/baseline); 0 prints no verdict")
	settle := flag.Duration("settle", 0, "pause after each command, so that work it leaves behind (a daemon refilling its pool, the kernel freeing namespaces) does not land on the next one")
	flag.Parse()
	args := flag.Args()
	split := -1
	for i, a := range args {
		if a == "--" {
			split = i
		}
	}
	if split <= 0 || split == len(args)-1 {
		fmt.Fprintln(os.Stderr, "usage: cmdbench [flags] REX_CMD... -- BASELINE_CMD...")
		os.Exit(2)
	}
	rex, base := args[:split], args[split+1:]
	var tr, tb []time.Duration
	for i := 0; i < *n+2; i++ {
		r, err := timeOne(rex)
		if err != nil {
			fmt.Fprintf(os.Stderr, "cmdbench: %s: %v\n", strings.Join(rex, " "), err)
			os.Exit(1)
		}
		time.Sleep(*settle)
		b, err := timeOne(base)
		if err != nil {
			fmt.Fprintf(os.Stderr, "cmdbench: %s: %v\n", strings.Join(base, " "), err)
			os.Exit(1)
		}
		time.Sleep(*settle)
		if i >= 2 { // the first runs warm caches
			tr, tb = append(tr, r), append(tb, b)
		}
	}
	mr, mb := median(tr), median(tb)
	ratio := float64(mr) / float64(mb)
	verdict := ""
	if *target > 0 {
		verdict = "PASS"
		if ratio > *target {
			verdict = "MISS"
		}
	}
	fmt.Printf("%-28s rex %8.2f ms   baseline %8.2f ms   ratio %5.2f   target %5.2f  %s\n",
		*name, ms(mr), ms(mb), ratio, *target, verdict)
}

func timeOne(argv []string) (time.Duration, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	d := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("%v: %s", err, out)
	}
	return d, nil
}

func median(d []time.Duration) time.Duration {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[len(d)/2]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
