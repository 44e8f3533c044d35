//go:build !rexthin

package main

// The standalone engine: rex-exec playing the broker for one run
// (--policy, --learn). It is in the engine build only, installed as
// rex-exec-standalone; the client build (engine_thin.go) hands over to it.

import (
	"context"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/rex-sh/rex/authz"
	"github.com/rex-sh/rex/broker"
	"github.com/rex-sh/rex/ipc"
)

// The client re-executes into this build for standalone mode, and the
// kernel names a process after its executable file: the name goes back to
// rex-exec, which process listings and policies on process names expect of
// the standalone broker. Package initialisation runs on the main thread,
// whose name is the process's.
func init() {
	_ = unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&processName[0])), 0, 0, 0)
}

var processName = []byte("rex-exec\x00")

// prespawn is the worker the engine's entry point started for a root
// standalone run (entry_engine_amd64.s; amd64 only): its pid, then the
// engine's ends of its socket and of its stdin, stdout and stderr pipes.
// pid 0: none. The entry point writes it before the runtime starts;
// afterwards only the main goroutine touches it, through prespawned and
// dropPrespawn.
var prespawn struct {
	pid, sock, stdin, stdout, stderr int64
}

// prespawned hands the entry point's worker to a standalone run's Runner,
// once: the Runner checks it before using it (broker.Adopted).
func prespawned() *broker.Adopted {
	ps := prespawn
	prespawn.pid = 0
	if ps.pid <= 0 {
		return nil
	}
	file := func(fd int64, name string) *os.File {
		// Non-blocking, as os.Pipe's are: the runtime's poller serves
		// them, and reads can time out.
		_ = unix.SetNonblock(int(fd), true)
		return os.NewFile(uintptr(fd), name)
	}
	return &broker.Adopted{PID: int(ps.pid), Sock: int(ps.sock),
		Stdin: file(ps.stdin, "worker-stdin"), Stdout: file(ps.stdout, "worker-stdout"), Stderr: file(ps.stderr, "worker-stderr")}
}

// dropPrespawn kills the entry point's worker when nothing will take it:
// a run through the daemon, an MCP server (it would wait for its first
// call), an invocation that fails before its run.
func dropPrespawn() {
	if a := prespawned(); a != nil {
		a.Discard()
	}
}

// engineProcs takes note of how the client started this engine. For a
// standalone run the client adds GOMAXPROCS=1 to the engine's
// environment, with REX_ENGINE_PROCS=1 to say it did, unless the caller
// set GOMAXPROCS (engineEnv; on amd64 its entry point, engineEnvp in
// entry_thin_amd64.s, does the same), so that the engine's Go
// runtime starts on one processor. A run's start-up is two Go programs
// starting at once on this machine's two processors, the engine and its
// worker: on one, the engine starts no thread for a second processor and
// hands no goroutine to one (a third fewer context switches), and leaves
// the worker, most often the last to be ready, a processor of its own.
// Hello standalone took ~4 % less (GOMAXPROCS=1 against 2, alternating,
// nine rounds of 40-60 runs: 0.94-1.01, median 0.96), and a loop of
// fs.stat took as long (25.1 against 25.6 µs a call): the run's broker
// side is one session answering one request at a time. Taking the
// processors back once the run starts gained nothing and lost the gain
// (1.01, 0.99, 1.03), so they are not.
//
// The two variables leave the engine's environment here, so that nothing
// it starts inherits them. An MCP server, whose runs overlap, gets the
// runtime's default back.
func engineProcs(mcp bool) {
	if os.Getenv("REX_ENGINE_PROCS") != "1" {
		return
	}
	_ = os.Unsetenv("REX_ENGINE_PROCS")
	_ = os.Unsetenv("GOMAXPROCS")
	if mcp {
		runtime.SetDefaultGOMAXPROCS()
	}
}

// preloadPolicy starts compiling the policy schema beside the rest of a
// standalone run's set-up, which the run would otherwise wait for in
// authz.LoadPath (its worker is ready first since the entry point starts it).
func preloadPolicy() { go authz.Preload() }

// signalContext is signal.NotifyContext's pair.
type signalContext struct {
	ctx  context.Context
	stop context.CancelFunc
}

// engineState is what a standalone run carries besides its options.
type engineState struct {
	// learner records a --learn run; set by learnRun.
	learner *broker.Learner
}

// handOff is the client build's (engine_thin.go); the engine runs
// standalone mode itself.
func handOff([]string, io.Writer, io.Writer) (int, bool) { return 0, false }

func standalone(o *options, script []byte, name string, args []byte) *ipc.Result {
	// SIGINT and SIGTERM cancel the run, which then kills its worker and
	// removes its cgroup (TestStandaloneInterrupt). os/signal's first
	// Notify in a process starts a thread to own the signal mask and hands
	// each signal to it and back, and mostly waits on that thread: 0.3-1.8
	// ms here, on the main goroutine just before the run when it was done
	// there. In a goroutine from the start of the set-up, those waits
	// overlap the rest of it.
	sigs := make(chan signalContext, 1)
	go func() {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		sigs <- signalContext{ctx, stop}
	}()
	defer func() {
		s := <-sigs
		// An MCP server runs on: its next runs set up their own, and
		// between runs the signals do what they do by default. A command
		// line process exits once it has printed the result, and undoing
		// Notify hands each signal to that thread and back again (70-170
		// µs here), so it keeps them: one arriving meanwhile is ignored.
		if o.server {
			s.stop()
		}
	}()
	wp, err := broker.WorkerPath("", true)
	if err != nil {
		return errorResult(ipc.ErrInternal, "%v", err)
	}
	audit := io.Writer(nil)
	if p := os.Getenv("REX_AUDIT_LOG"); p != "" {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return validationError("REX_AUDIT_LOG: %v", err)
		}
		defer f.Close()
		audit = f
	}
	r, err := broker.NewRunner(broker.Config{WorkerPath: wp, Audit: audit, Log: os.Stderr,
		RedactionDict: os.Getenv("REX_REDACTION_DICT"), Protected: []string{o.policy},
		// The caller's own broker may ask another DNS server (tests,
		// split horizon): it resolves names for the caller only.
		DNSServer: os.Getenv("REX_DNS_SERVER"),
		// As root, the worker makes its own user namespace, so the engine
		// vforks it instead of copying itself (broker.startWorker), checked
		// worker by worker: a probe would cost what this saves.
		WorkerUsernsEach: true,
		// As root on amd64, the entry point started the worker already.
		Adopt: prespawned(),
		// This process reaps the worker before it prints the result: the
		// worker may end as soon as it has written it.
		OneRun: true,
		// The worker starts first, and its start (its process image and
		// lock-down, most of a run's start-up) overlaps the rest: the
		// Runner's set-up, the policy's parse. It reads no script until
		// the run below hands it one.
		Prestart: true})
	if err != nil {
		return errorResult(ipc.ErrInternal, "%v", err)
	}
	// Wait for the run's cleanup (its cgroup and worker) before returning:
	// nothing outlives this process to do it. Close first: it kills the
	// worker started ahead when no run took it (a policy that fails to load).
	defer r.Wait()
	defer r.Close()
	// The caller's principal (names from the user and group databases)
	// is looked up beside the policy's load.
	principal := make(chan authz.Principal, 1)
	go func() {
		gids := []uint32{uint32(os.Getgid())}
		if gs, err := os.Getgroups(); err == nil {
			for _, g := range gs {
				gids = append(gids, uint32(g))
			}
		}
		principal <- broker.PrincipalFor(uint32(os.Getuid()), gids)
	}()
	ps, err := authz.LoadPath(o.policy)
	if err != nil {
		return validationError("policy: %v", err)
	}
	s := <-sigs
	sigs <- s // for the deferred stop
	return r.Run(s.ctx, &broker.Job{
		Principal: <-principal, Policies: ps,
		Script: script, ScriptName: name, Args: args, Timeout: o.timeout, PeerPID: os.Getpid(), Learn: o.engine.learner,
	})
}
