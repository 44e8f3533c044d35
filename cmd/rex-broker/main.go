// Command rex-broker is rex's privileged daemon: it accepts runs on a Unix
// socket, takes each run's principal from SO_PEERCRED, and runs every
// script in a fresh sandboxed worker whose every request it authorises with
// Cedar. See DESIGN §1 and `rex-broker -h`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rex-sh/rex/authz"
	"github.com/rex-sh/rex/broker"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "doctor":
			os.Exit(broker.Doctor(os.Stdout, broker.Probe()))
		case janitorArg:
			// Outlive the broker's signals: only EOF on stdin ends it.
			signal.Ignore(syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
			broker.CgroupJanitor(os.Stdin)
			os.Exit(0)
		}
	}
	os.Exit(run(os.Args[1:]))
}

// janitorArg starts the broker binary as its own cgroup janitor (see
// broker.CgroupJanitor); it is not meant to be typed.
const janitorArg = "__cgroup-janitor"

func run(argv []string) int {
	fs := flag.NewFlagSet("rex-broker", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: rex-broker [flags]\n       rex-broker doctor\n\nflags:\n")
		fs.PrintDefaults()
	}
	socket := fs.String("socket", "/run/rex/rex.sock", "Unix socket to listen on (ignored under systemd socket activation)")
	policyDir := fs.String("policy-dir", "/etc/rex/policies", "directory of *.cedar policies (and optional entities.json)")
	auditPath := fs.String("audit-log", "-", "audit log file (JSON lines, appended; reopened on SIGUSR1), or - for stderr")
	maxRuns := fs.Int("max-runs", 64, "concurrent runs at most (0: unbounded)")
	maxPerUser := fs.Int("max-runs-per-user", 16, "concurrent runs per user at most (0: unbounded)")
	workerPath := fs.String("worker", "", "path of the rex-worker binary (default: next to rex-broker, then /usr/local/libexec/rex, /usr/libexec/rex)")
	socketMode := fs.String("socket-mode", "0660", "permissions of the socket")
	socketGroup := fs.String("socket-group", "rex", "group owning the socket (kept as root's if the group does not exist)")
	allowGroups := fs.String("allow-group", "", "comma-separated groups whose members may use the broker (default: anyone who can open the socket)")
	allowDegraded := fs.String("allow-degraded", "", "comma-separated sandbox layers to run without when missing (see rex-broker doctor); logged on every run")
	workerUIDs := fs.String("worker-uids", "2100000000:65536", "host uids for workers, BASE:COUNT; one per concurrent run, used by nothing else")
	timeout := fs.Duration("timeout", broker.DefaultLimits.Timeout, "longest run allowed; clients may ask for less")
	memory := fs.Int64("memory-mb", broker.DefaultLimits.MemoryBytes>>20, "memory limit of one worker, MiB")
	pids := fs.Int64("pids", broker.DefaultLimits.Pids, "tasks (threads) one worker may have")
	outputBytes := fs.Int("output-bytes", broker.DefaultLimits.StdoutBytes, "stdout a script may print, bytes (more is cut with a marker)")
	writeBytes := fs.Int64("write-bytes", broker.DefaultLimits.WriteBytes, "bytes one run may write to host files")
	grace := fs.Duration("shutdown-grace", 30*time.Second, "on SIGTERM, how long running scripts may finish before they are killed")
	redactionDict := fs.String("redaction-dict", broker.DefaultRedactionDict, "redaction dictionary of redacted_read (printf-style line patterns)")
	dnsServer := fs.String("dns-server", "", "host:port of the only DNS server asked for the names of net operations (default: the system resolver)")
	pool := fs.Int("pool", 2, "workers kept started ahead of runs (each serves exactly one run; 0: none)")
	watch := fs.Bool("watch", true, "reload policies when files in --policy-dir change (as on SIGHUP)")
	if err := fs.Parse(argv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "rex-broker: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "rex-broker: "+format+"\n", args...) }
	usage := func(format string, args ...any) int { logf(format, args...); return 2 }

	mode, err := strconv.ParseUint(*socketMode, 8, 32)
	if err != nil || mode > 0o777 {
		return usage("--socket-mode %q is not an octal mode", *socketMode)
	}
	gid := -1
	if g, err := user.LookupGroup(*socketGroup); err == nil {
		gid, _ = strconv.Atoi(g.Gid)
	}
	var allowGIDs []uint32
	for _, name := range splitList(*allowGroups) {
		g, err := lookupGroup(name)
		if err != nil {
			return usage("--allow-group: %v", err)
		}
		allowGIDs = append(allowGIDs, g)
	}
	uidBase, uidCount, err := parseUIDRange(*workerUIDs)
	if err != nil {
		return usage("--worker-uids: %v", err)
	}
	if *timeout <= 0 || *memory <= 0 || *pids <= 0 || *outputBytes <= 0 || *writeBytes < 0 {
		return usage("limits must be positive")
	}

	// Fail closed: probe every layer; refuse runs while a required one is
	// missing unless the operator accepted the gap by name.
	results := broker.Probe()
	refused, accepted, err := broker.Gaps(results, splitList(*allowDegraded))
	if err != nil {
		return usage("%v", err)
	}
	for _, r := range results {
		if r.Status != broker.LayerOK {
			logf("sandbox layer %s: %s %s", r.Name, r.Status, r.Detail)
		}
	}
	if len(refused) > 0 {
		logf("REFUSING ALL RUNS: required sandbox layer missing: %s (see `rex-broker doctor`; --allow-degraded=%s accepts the gap)",
			strings.Join(refused, ", "), strings.Join(refused, ","))
	}
	if len(accepted) > 0 {
		logf("running degraded, accepted by --allow-degraded: %s", strings.Join(accepted, ", "))
	}

	var audit io.Writer = os.Stderr
	var auditFile *broker.AuditFile
	if *auditPath != "-" {
		auditFile, err = broker.OpenAuditFile(*auditPath)
		if err != nil {
			logf("audit log: %v", err)
			return 1
		}
		defer auditFile.Close()
		audit = auditFile
	}
	ps, err := authz.LoadPath(*policyDir)
	if err != nil {
		logf("policies: %v", err)
		return 2
	}
	wp, err := broker.WorkerPath(*workerPath, false)
	if err != nil {
		logf("%v", err)
		return 1
	}
	limits := broker.Limits{
		Timeout: *timeout, MemoryBytes: *memory << 20, Pids: *pids, StdoutBytes: *outputBytes, WriteBytes: *writeBytes,
	}
	cfg := broker.Config{
		WorkerPath: wp, Limits: limits, Audit: audit, Log: os.Stderr,
		WorkerUIDBase: uidBase, WorkerUIDCount: uidCount, Refuse: refused, Degraded: accepted,
		RedactionDict: *redactionDict, Protected: []string{*policyDir}, Secret: []string{*socket},
		DNSServer: *dnsServer, Pool: *pool, WorkerUserns: true,
	}
	if os.Geteuid() == 0 {
		if n := broker.SweepCgroups(); n > 0 {
			logf("removed %d cgroups left by a broker that died", n)
		}
		feed, err := startJanitor()
		if err != nil {
			logf("cgroup janitor not started (cgroups of runs are still removed when they end, but not if the broker is killed): %v", err)
		} else {
			cfg.OnCgroup = broker.JanitorFeed(feed)
		}
	}
	runner, err := broker.NewRunner(cfg)
	if err != nil {
		logf("%v", err)
		return 1
	}
	d := &broker.Daemon{Runner: runner, Log: os.Stderr, MaxRuns: *maxRuns, MaxRunsPerUser: *maxPerUser, AllowGroups: allowGIDs}
	d.Policies.Store(ps)

	ln, activated, err := listener(*socket, os.FileMode(mode), gid)
	if err != nil {
		logf("listen on %s: %v", *socket, err)
		return 1
	}
	where := *socket
	if activated {
		where = "the socket passed by systemd"
	} else {
		defer os.Remove(*socket)
	}
	spawn := ""
	if runner.WorkerMakesUserns() {
		spawn = "; workers make their own user namespace"
	}
	logf("serving on %s with %d policies from %s%s", where, ps.Len(), *policyDir, spawn)

	// One reload at a time: SIGHUP and the watch may fire together.
	var reloadMu sync.Mutex
	reload := func(why string) {
		reloadMu.Lock()
		defer reloadMu.Unlock()
		// The new set is parsed and validated in full first; a broken set
		// is logged and the old one stays. Running scripts keep the set
		// they started with.
		nps, err := authz.LoadPath(*policyDir)
		if err != nil {
			logf("reload (%s) failed, keeping the previous policies: %v", why, err)
			return
		}
		d.Policies.Store(nps)
		logf("reloaded %d policies (%s)", nps.Len(), why)
	}
	if *watch {
		st, err := os.Stat(*policyDir)
		if err == nil {
			err = watchPolicies(*policyDir, st.IsDir(), reload, logf)
		}
		if err != nil {
			logf("not watching %s (SIGHUP still reloads): %v", *policyDir, err)
		}
	}

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1)
	// Serve returns as soon as the listener closes; the process must then
	// stay until Shutdown has let every connection write its result.
	shutdownDone := make(chan struct{})
	go func() {
		defer close(shutdownDone)
		for sig := range sigs {
			switch sig {
			case syscall.SIGHUP:
				reload("SIGHUP")
				continue
			case syscall.SIGUSR1:
				if auditFile != nil {
					if err := auditFile.Reopen(); err != nil {
						logf("reopening the audit log failed, still writing the old file: %v", err)
					} else {
						logf("reopened the audit log %s", *auditPath)
					}
				}
				continue
			}
			logf("%v: refusing new runs, waiting up to %v for running ones", sig, *grace)
			ctx, cancel := context.WithTimeout(context.Background(), *grace)
			d.Shutdown(ctx)
			cancel()
			return
		}
	}()
	if err := d.Serve(ln); err != nil {
		logf("%v", err)
		return 1
	}
	<-shutdownDone
	runner.Close()
	runner.Wait()
	return 0
}

// listener returns the socket systemd passed (LISTEN_PID/LISTEN_FDS, fd 3)
// or creates one at path.
func listener(path string, mode os.FileMode, gid int) (*net.UnixListener, bool, error) {
	if os.Getenv("LISTEN_PID") == strconv.Itoa(os.Getpid()) {
		n, _ := strconv.Atoi(os.Getenv("LISTEN_FDS"))
		os.Unsetenv("LISTEN_PID")
		os.Unsetenv("LISTEN_FDS")
		os.Unsetenv("LISTEN_FDNAMES")
		if n != 1 {
			return nil, false, fmt.Errorf("systemd passed %d sockets; rex-broker takes exactly one", n)
		}
		syscall.CloseOnExec(3)
		f := os.NewFile(3, "systemd-socket")
		ln, err := net.FileListener(f)
		f.Close()
		if err != nil {
			return nil, false, err
		}
		ul, ok := ln.(*net.UnixListener)
		if !ok {
			ln.Close()
			return nil, false, errors.New("the socket systemd passed is not a Unix stream socket")
		}
		// The socket file belongs to systemd: leave it on exit.
		ul.SetUnlinkOnClose(false)
		return ul, true, nil
	}
	ln, err := broker.Listen(path, mode, gid)
	return ln, false, err
}

// startJanitor starts this binary as the cgroup janitor and returns the
// write end of its stdin. The janitor has no parent-death signal and its
// own process group, so it outlives a SIGKILLed broker and cleans up.
func startJanitor() (io.Writer, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd := &exec.Cmd{Path: self, Args: []string{"rex-broker", janitorArg}, Stdin: r, Dir: "/",
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true}}
	err = cmd.Start()
	r.Close()
	if err != nil {
		w.Close()
		return nil, err
	}
	// Reap it if it ever exits while the broker lives.
	go func() { _ = cmd.Wait() }()
	return w, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func lookupGroup(name string) (uint32, error) {
	g, err := user.LookupGroup(name)
	if err != nil {
		if n, perr := strconv.ParseUint(name, 10, 32); perr == nil {
			return uint32(n), nil
		}
		return 0, err
	}
	n, err := strconv.ParseUint(g.Gid, 10, 32)
	return uint32(n), err
}

// parseUIDRange parses BASE:COUNT. The range must not include root or
// the usual system and login uids, and must not wrap.
func parseUIDRange(s string) (uint32, uint32, error) {
	b, c, ok := strings.Cut(s, ":")
	base, err1 := strconv.ParseUint(b, 10, 32)
	count, err2 := strconv.ParseUint(c, 10, 32)
	if !ok || err1 != nil || err2 != nil || count == 0 {
		return 0, 0, fmt.Errorf("%q is not BASE:COUNT", s)
	}
	if base < 65536 {
		return 0, 0, fmt.Errorf("base %d is below 65536, where system and login uids live", base)
	}
	if base+count-1 > 0xfffffffe {
		return 0, 0, fmt.Errorf("range %d:%d runs past the largest uid", base, count)
	}
	for u := base; u < base+count && u < base+16; u++ {
		if pw, err := user.LookupId(strconv.FormatUint(u, 10)); err == nil {
			return 0, 0, fmt.Errorf("uid %d belongs to user %s; worker uids must belong to no one", u, pw.Username)
		}
	}
	return uint32(base), uint32(count), nil
}
