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
	"os"
	"os/signal"
	"os/user"
	"strconv"
	"syscall"
	"time"

	"github.com/rex-sh/rex/authz"
	"github.com/rex-sh/rex/broker"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(argv []string) int {
	fs := flag.NewFlagSet("rex-broker", flag.ContinueOnError)
	socket := fs.String("socket", "/run/rex/rex.sock", "Unix socket to listen on")
	policyDir := fs.String("policy-dir", "/etc/rex/policies", "directory of *.cedar policies (and optional entities.json)")
	auditPath := fs.String("audit-log", "-", "audit log file (JSON lines, appended), or - for stderr")
	maxRuns := fs.Int("max-runs", 64, "concurrent runs at most (0: unbounded)")
	maxPerUser := fs.Int("max-runs-per-user", 16, "concurrent runs per user at most (0: unbounded)")
	workerPath := fs.String("worker", "", "path of the rex-worker binary (default: next to rex-broker, then /usr/libexec/rex)")
	socketMode := fs.String("socket-mode", "0660", "permissions of the socket")
	socketGroup := fs.String("socket-group", "rex", "group owning the socket (kept as root's if the group does not exist)")
	timeout := fs.Duration("timeout", broker.DefaultLimits.Timeout, "longest run allowed; clients may ask for less")
	memory := fs.Int64("memory-mb", broker.DefaultLimits.MemoryBytes>>20, "memory limit of one worker, MiB")
	grace := fs.Duration("shutdown-grace", 30*time.Second, "on SIGTERM, how long running scripts may finish before they are killed")
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
	mode, err := strconv.ParseUint(*socketMode, 8, 32)
	if err != nil || mode > 0o777 {
		fmt.Fprintf(os.Stderr, "rex-broker: --socket-mode %q is not an octal mode\n", *socketMode)
		return 2
	}
	gid := -1
	if g, err := user.LookupGroup(*socketGroup); err == nil {
		gid, _ = strconv.Atoi(g.Gid)
	}

	var audit io.Writer = os.Stderr
	if *auditPath != "-" {
		f, err := os.OpenFile(*auditPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			fmt.Fprintf(os.Stderr, "rex-broker: audit log: %v\n", err)
			return 1
		}
		defer f.Close()
		audit = f
	}
	ps, err := authz.LoadPath(*policyDir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "rex-broker: policies: %v\n", err)
		return 2
	}
	wp, err := broker.WorkerPath(*workerPath, false)
	if err != nil {
		fmt.Fprintf(os.Stderr, "rex-broker: %v\n", err)
		return 1
	}
	limits := broker.DefaultLimits
	limits.Timeout = *timeout
	limits.MemoryBytes = *memory << 20
	runner, err := broker.NewRunner(broker.Config{WorkerPath: wp, Limits: limits, Audit: audit, Log: os.Stderr})
	if err != nil {
		fmt.Fprintf(os.Stderr, "rex-broker: %v\n", err)
		return 1
	}
	d := &broker.Daemon{Runner: runner, Log: os.Stderr, MaxRuns: *maxRuns, MaxRunsPerUser: *maxPerUser}
	d.Policies.Store(ps)

	ln, err := broker.Listen(*socket, os.FileMode(mode), gid)
	if err != nil {
		fmt.Fprintf(os.Stderr, "rex-broker: listen on %s: %v\n", *socket, err)
		return 1
	}
	defer os.Remove(*socket)
	fmt.Fprintf(os.Stderr, "rex-broker: serving on %s with %d policies from %s\n", *socket, ps.Len(), *policyDir)

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		for sig := range sigs {
			if sig == syscall.SIGHUP {
				// A broken set is logged and the old one stays; running
				// scripts keep the set they started with.
				nps, err := authz.LoadPath(*policyDir)
				if err != nil {
					fmt.Fprintf(os.Stderr, "rex-broker: reload failed, keeping the previous policies: %v\n", err)
					continue
				}
				d.Policies.Store(nps)
				fmt.Fprintf(os.Stderr, "rex-broker: reloaded %d policies\n", nps.Len())
				continue
			}
			fmt.Fprintf(os.Stderr, "rex-broker: %v: refusing new runs, waiting up to %v for running ones\n", sig, *grace)
			ctx, cancel := context.WithTimeout(context.Background(), *grace)
			d.Shutdown(ctx)
			cancel()
			return
		}
	}()
	if err := d.Serve(ln); err != nil {
		fmt.Fprintf(os.Stderr, "rex-broker: %v\n", err)
		return 1
	}
	runner.Wait()
	return 0
}
