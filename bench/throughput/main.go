// Command throughput drives one rex-broker with concurrent rex-exec clients
// and reports runs per second, failures, the broker's memory idle and after
// the runs, and the workers' peak memory (from the run_end audit records).
// It needs root (the daemon runs workers under their own uids).
//
//	throughput -bin bin -n 1000 -c 8
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	bin := flag.String("bin", "bin", "directory of the rex binaries")
	n := flag.Int("n", 1000, "runs")
	c := flag.Int("c", 8, "concurrent clients")
	pool := flag.Int("pool", 2, "rex-broker --pool")
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "throughput: needs root (it starts rex-broker)")
		os.Exit(2)
	}
	dir, err := os.MkdirTemp("", "rex-throughput-")
	check(err)
	defer os.RemoveAll(dir)
	check(os.Chmod(dir, 0o755))
	pol := filepath.Join(dir, "pol")
	check(os.Mkdir(pol, 0o755))
	check(os.WriteFile(filepath.Join(pol, "p.cedar"), []byte(`permit(principal, action == file_system::Action::"stat", resource == file_system::Dir::"/");`), 0o644))
	script := filepath.Join(dir, "hello.risor")
	check(os.WriteFile(script, []byte(`"hello"`), 0o644))
	sock, audit := filepath.Join(dir, "rex.sock"), filepath.Join(dir, "audit.jsonl")
	broker := exec.Command(filepath.Join(*bin, "rex-broker"), "--socket", sock, "--policy-dir", pol,
		"--audit-log", audit, "--socket-mode", "0666", "--pool", strconv.Itoa(*pool),
		"--max-runs", strconv.Itoa(4**c), "--max-runs-per-user", strconv.Itoa(4**c))
	check(broker.Start())
	defer func() { _ = broker.Process.Signal(syscall.SIGTERM); _ = broker.Wait() }()
	for i := 0; i < 500; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(time.Second) // let the pool fill
	idle := rss(broker.Process.Pid)

	var failed atomic.Int64
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < *c; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(*n) {
				out, err := exec.Command(filepath.Join(*bin, "rex-exec"), "--socket", sock, script).Output()
				if err != nil || !strings.Contains(string(out), `"status":"SUCCESS"`) {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	time.Sleep(2 * time.Second) // asynchronous cleanup, pool refill
	after := rss(broker.Process.Pid)

	peaks := peakMemory(audit)
	sort.Slice(peaks, func(i, j int) bool { return peaks[i] < peaks[j] })
	var med, max int64
	if len(peaks) > 0 {
		med, max = peaks[len(peaks)/2], peaks[len(peaks)-1]
	}
	rate := float64(*n) / took.Seconds()
	verdict := func(ok bool) string {
		if ok {
			return "PASS"
		}
		return "MISS"
	}
	fmt.Printf("%-28s %8.1f runs/s with %d clients, %d failed   target ≥ 100/s, 0 failed  %s\n",
		"daemon throughput", rate, *c, failed.Load(), verdict(rate >= 100 && failed.Load() == 0))
	fmt.Printf("%-28s idle %6.1f MiB   after %d runs %6.1f MiB   growth %5.1f MiB\n",
		"broker RSS", mib(idle), *n, mib(after), mib(after-idle))
	fmt.Printf("%-28s median %6.1f MiB   max %6.1f MiB over %d runs   target ≤ 25 MiB  %s\n",
		"worker peak RSS", mib(med), mib(max), len(peaks), verdict(max > 0 && max <= 25<<20))
}

func rss(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	check(err)
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

func peakMemory(audit string) []int64 {
	f, err := os.Open(audit)
	check(err)
	defer f.Close()
	var out []int64
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var rec struct {
			Event string `json:"event"`
			Peak  int64  `json:"peak_memory_bytes"`
		}
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Event == "run_end" && rec.Peak > 0 {
			out = append(out, rec.Peak)
		}
	}
	return out
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "throughput:", err)
		os.Exit(1)
	}
}
