// Command fsbench measures rex's file reads against direct access, in the
// same run:
//
//   - per call: fs.cat of a 4 KiB file, (time of a script doing n calls −
//     time of an empty script) / n, against open+read+close of the same
//     file in this Go process;
//
//   - bulk: 256 MiB read through an fs.open descriptor in 1 MiB pieces
//     (script time − empty script time), against `cat file > /dev/null`.
//
//     fsbench -rex bin/rex-exec -n 5000 -runs 5
//
// Targets (issue 3): per-call ratio ≤ 10, bulk throughput ratio ≥ 0.9.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"time"
)

func main() {
	rex := flag.String("rex", "bin/rex-exec", "rex-exec binary")
	n := flag.Int("n", 5000, "fs.cat calls per script")
	runs := flag.Int("runs", 5, "runs of each measurement")
	bulkMiB := flag.Int("bulk-mib", 256, "size of the bulk file in MiB")
	flag.Parse()

	dir, err := os.MkdirTemp("", "rex-fsbench-")
	check(err)
	defer os.RemoveAll(dir)
	small := filepath.Join(dir, "small")
	check(os.WriteFile(small, make([]byte, 4096), 0o644))
	big := filepath.Join(dir, "big")
	f, err := os.Create(big)
	check(err)
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i)
	}
	for range *bulkMiB {
		_, err := f.Write(chunk)
		check(err)
	}
	check(f.Close())
	pol := filepath.Join(dir, "p.cedar")
	check(os.WriteFile(pol, []byte(fmt.Sprintf(`permit(principal, action in [file_system::Action::"open", file_system::Action::"read"], resource in file_system::Dir::%q);
permit(principal, action == file_system::Action::"open", resource == file_system::Dir::%q);`, dir, dir)), 0o644))
	script := func(name, body string) string {
		p := filepath.Join(dir, name)
		check(os.WriteFile(p, []byte(body), 0o644))
		return p
	}
	empty := script("empty.risor", "1\n")
	cat := script("cat.risor", fmt.Sprintf("for i := 0; i < %d; i++ { fs.cat(%q) }\n1\n", *n, small))
	bulk := script("bulk.risor", fmt.Sprintf(`f := fs.open(%q)
buf := byte_slice(strings.repeat("x", 1048576))
total := 0
for {
  r := f.read(buf)
  if len(r) == 0 { break }
  total += len(r)
}
f.close()
total
`, big))

	run := func(s string) time.Duration { return timeCmd(*rex, "--policy", pol, "--output", "json", s) }
	var base, catT, bulkT, catCmd, direct []time.Duration
	for range *runs {
		// Interleaved, so that machine noise hits every workload alike.
		base = append(base, run(empty))
		catT = append(catT, run(cat))
		bulkT = append(bulkT, run(bulk))
		catCmd = append(catCmd, timeShell(fmt.Sprintf("cat %q > /dev/null", big)))
		direct = append(direct, directReads(small, *n))
	}
	b := median(base)
	perRex := (median(catT) - b) / time.Duration(*n)
	perGo := median(direct) / time.Duration(*n)
	ratio := float64(perRex) / float64(perGo)
	fmt.Printf("%-44s rex %9v  direct %9v  ratio %6.2fx  target <= 10x  %s\n",
		"fs.cat 4 KiB, per call", perRex, perGo, ratio, verdict(ratio <= 10))
	rexBulk := median(bulkT) - b
	catBulk := median(catCmd)
	mib := float64(*bulkMiB)
	tr := mib / rexBulk.Seconds()
	tc := mib / catBulk.Seconds()
	fmt.Printf("%-44s rex %7.0f MiB/s  cat %7.0f MiB/s  ratio %5.2fx  target >= 0.9x  %s\n",
		fmt.Sprintf("%d MiB via fs.open fd vs cat", *bulkMiB), tr, tc, tr/tc, verdict(tr/tc >= 0.9))
}

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}

// directReads is the floor: open, read and close the file n times.
func directReads(p string, n int) time.Duration {
	buf := make([]byte, 8192)
	start := time.Now()
	for range n {
		f, err := os.Open(p)
		check(err)
		for {
			k, err := f.Read(buf)
			if k == 0 || err != nil {
				break
			}
		}
		f.Close()
	}
	return time.Since(start)
}

func timeCmd(name string, args ...string) time.Duration {
	start := time.Now()
	out, err := exec.Command(name, args...).CombinedOutput()
	d := time.Since(start)
	if err != nil {
		fmt.Fprintf(os.Stderr, "fsbench: %s: %v\n%s", name, err, out)
		os.Exit(1)
	}
	// Let the work a command leaves behind (the kernel freeing a run's
	// namespaces and memory on a workqueue) finish before the next
	// measurement, which it would otherwise slow.
	time.Sleep(50 * time.Millisecond)
	return d
}

func timeShell(cmd string) time.Duration { return timeCmd("sh", "-c", cmd) }

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "fsbench:", err)
		os.Exit(1)
	}
}
