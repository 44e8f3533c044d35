package broker

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rex-sh/rex/authz"
	"github.com/rex-sh/rex/broker/host"
	"github.com/rex-sh/rex/ipc"
	"golang.org/x/sys/unix"
)

// Limits bound one run. A client may ask for less, never for more.
type Limits struct {
	Timeout     time.Duration
	MemoryBytes int64
	Pids        int64
	StdoutBytes int
	WriteBytes  int64
}

// DefaultLimits are the broker's defaults.
var DefaultLimits = Limits{
	Timeout:     30 * time.Second,
	MemoryBytes: 512 << 20,
	Pids:        64,
	StdoutBytes: 1 << 20,
	WriteBytes:  256 << 20,
}

// Config configures a Runner.
type Config struct {
	WorkerPath string
	Limits     Limits
	Audit      io.Writer // JSON lines; nil discards
	Log        io.Writer // diagnostics; nil discards
	// WorkerUIDBase and WorkerUIDCount give the host uids that a root
	// broker runs workers as, one per live run.
	WorkerUIDBase  uint32
	WorkerUIDCount uint32
	// DNSServer ("host:port"), when set, is the only DNS server the broker
	// asks for the names of network operations; empty uses the system's
	// resolver.
	DNSServer string
	// Refuse names required sandbox layers found missing at start: every
	// run is refused, naming them (fail closed).
	Refuse []string
	// Degraded names missing layers the operator accepted with
	// --allow-degraded; every run logs and audits them.
	Degraded []string
	// OnCgroup, when set, hears of each run's cgroup directories as they
	// are created (live) and removed, so that a watcher outside the broker
	// can remove them if the broker dies.
	OnCgroup func(dirs []string, live bool)
	// Protected are paths scripts may never modify whatever the policy
	// says (the policy directory), added to the built-in mandatory deny
	// list with the worker binary; Secret are paths they may not even read
	// (the socket directory).
	Protected, Secret []string
	// RedactionDict is the file of line patterns for redacted_read; empty
	// or unreadable means every line is redacted.
	RedactionDict string
	// Pool is how many workers a root broker keeps started ahead of runs
	// (0: none). Each is in its namespaces, cgroup and uid, waiting for the
	// Start frame, which it can only read once locked down; each serves
	// exactly one run and is never reused.
	Pool int
	// WorkerUserns lets a root Runner leave each worker's user namespace
	// to the worker's own entry point, which is cheaper for the broker
	// (see startWorker), when a probe worker shows at start that it works
	// on this host: unprivileged user namespaces allowed, amd64. Otherwise
	// the broker makes the namespace as before, and logs why.
	WorkerUserns bool
	// WorkerUsernsEach is WorkerUserns without the probe, for a Runner of
	// one run (standalone rex-exec as root), where a probe worker would
	// cost more than the cheaper start saves: where the host's sysctls
	// allow unprivileged user namespaces, each worker is checked before a
	// run gets it, and one that could not make its namespace is replaced
	// by one the broker makes it for (and so are the next).
	WorkerUsernsEach bool
	// Adopt is a worker started for the Runner before it existed (see
	// Adopted); Prestart's worker is that one when it passes its check.
	Adopt *Adopted
	// OneRun is a Runner in a process that waits for its run's cleanup
	// before it ends (standalone rex-exec): its worker exits as soon as it
	// has written its result (ipc.Start.ExitAfterResult), and the run's
	// peak memory is the reaped worker's rusage.
	OneRun bool
	// Prestart has NewRunner call Runner.Prestart as soon as it knows how
	// to start a worker, before the rest of its set-up (the host file
	// system's mount table, the deny lists), which the worker's start
	// then overlaps.
	Prestart bool
}

// DefaultWorkerUIDBase is the first host uid of a root Runner's workers
// when Config gives none: the uid of its first run.
const DefaultWorkerUIDBase = 2_100_000_000

// ErrShutdown is the cancellation cause of runs the daemon kills at the
// end of its shutdown grace period.
var ErrShutdown = errors.New("the broker is shutting down")

// Runner runs scripts, one fresh worker per run. It is safe for concurrent
// use.
type Runner struct {
	cfg        Config
	fs         *host.FS
	audit      *auditLog
	privileged bool
	uids       *uidPool
	mandatory  *mandatoryList
	redact     *redactor
	cgroups    cgroupMode
	active     sync.WaitGroup
	pool       chan *prepared                  // nil without a pool
	ahead      atomic.Pointer[chan prepResult] // the worker of Prestart, until a run takes it
	running    atomic.Int32                    // runs between take and the end of run
	closed     atomic.Bool
	// workerUserns: workers make their own user namespace
	// (Config.WorkerUserns); cleared for good when one could not.
	workerUserns atomic.Bool
	// adopt is Config.Adopt until the first prepare takes it (or Close
	// kills it).
	adopt atomic.Pointer[Adopted]
}

// NewRunner prepares a Runner. A root Runner uses per-run worker uids and
// cgroups; an unprivileged one (standalone rex-exec) maps the worker to the
// caller's own uid inside a user namespace.
func NewRunner(cfg Config) (*Runner, error) {
	if cfg.Limits == (Limits{}) {
		cfg.Limits = DefaultLimits
	}
	if cfg.WorkerUIDCount == 0 {
		cfg.WorkerUIDBase, cfg.WorkerUIDCount = DefaultWorkerUIDBase, 65536
	}
	// What starting a worker needs comes first (prepare reads no other
	// field), so that Config.Prestart's worker starts before the rest.
	r := &Runner{cfg: cfg, privileged: os.Geteuid() == 0}
	r.adopt.Store(cfg.Adopt)
	if r.privileged {
		r.uids = newUIDPool(cfg.WorkerUIDBase, cfg.WorkerUIDCount)
		r.cgroups = detectCgroups()
		switch {
		case len(cfg.Refuse) > 0:
		case cfg.WorkerUsernsEach:
			r.workerUserns.Store(runtime.GOARCH == "amd64" && unprivilegedUserns("/proc/sys"))
		case cfg.WorkerUserns:
			if err := r.probeWorkerUserns(); err == nil {
				r.workerUserns.Store(true)
			} else if cfg.Log != nil {
				fmt.Fprintf(cfg.Log, "rex-broker: workers get their user namespace from the broker: %v\n", err)
			}
		}
		if cfg.Pool > 0 && len(cfg.Refuse) == 0 {
			r.pool = make(chan *prepared, cfg.Pool)
			for i := 0; i < cfg.Pool; i++ {
				r.refill()
			}
		}
	}
	if cfg.Prestart {
		r.Prestart()
	}
	fs, err := host.New()
	if err != nil {
		r.Close()
		r.Wait()
		return nil, fmt.Errorf("open host file system: %w", err)
	}
	r.fs = fs
	r.audit = newAuditLog(cfg.Audit)
	r.mandatory = newMandatoryList(cfg.Secret, append([]string{cfg.WorkerPath}, cfg.Protected...))
	r.redact = loadRedactor(cfg.RedactionDict)
	return r, nil
}

// WorkerMakesUserns reports whether this Runner's workers make their own
// user namespace (Config.WorkerUserns, and the probe passed).
func (r *Runner) WorkerMakesUserns() bool { return r.workerUserns.Load() }

// Wait blocks until every run (and its cleanup) has finished.
func (r *Runner) Wait() { r.active.Wait() }

// Close stops refilling the pool and kills the workers waiting in it (and
// one Prestart started that no run took). Runs in progress are not
// affected; Wait for them.
func (r *Runner) Close() {
	r.closed.Store(true)
	if a := r.adopt.Swap(nil); a != nil {
		a.Discard()
	}
	r.drain()
	if ch := r.ahead.Swap(nil); ch != nil {
		if res := <-*ch; res.p != nil {
			res.p.release(r)
		}
	}
}

type prepResult struct {
	p   *prepared
	err error
}

// Prestart starts one worker in the background for the next run, and
// nothing replaces it once taken. Standalone rex-exec calls it before it
// parses the policy, so that the worker's start (its process image and
// lock-down, most of a run's start-up) overlaps the parse instead of
// following it. The worker reads no script before the run hands it one;
// Close kills it if no run does.
func (r *Runner) Prestart() {
	if r.pool != nil || len(r.cfg.Refuse) > 0 || r.ahead.Load() != nil {
		return
	}
	ch := make(chan prepResult, 1)
	r.ahead.Store(&ch)
	r.active.Add(1)
	go func() {
		defer r.active.Done()
		p, err := r.prepare()
		ch <- prepResult{p, err}
	}()
}

// drain kills the workers waiting in the pool.
func (r *Runner) drain() {
	if r.pool == nil {
		return
	}
	for {
		select {
		case p := <-r.pool:
			p.release(r)
		default:
			return
		}
	}
}

// prepared is a started worker that no run owns yet: in fresh namespaces,
// under its own uid, in its own cgroup, waiting for its Start frame.
type prepared struct {
	id   string // becomes the run's id, and names its cgroup
	wp   *workerProc
	pc   *ipc.PacketConn
	cg   *cgroup
	dirs []string // cgroup directories announced to OnCgroup
	uid  uint32
	// checkUserns: the worker was to make its own user namespace, which
	// take checks before a run gets it (Config.WorkerUsernsEach).
	checkUserns bool
}

// errCapacity marks a refusal for lack of worker uids.
type errCapacity struct{ error }

// prepare starts one worker and puts it in its cgroup.
func (r *Runner) prepare() (*prepared, error) {
	p := &prepared{id: newRunID(), uid: uint32(os.Getuid())}
	hostGID := uint32(os.Getgid())
	if r.privileged {
		u, err := r.uids.get()
		if err != nil {
			return nil, errCapacity{err}
		}
		p.uid, hostGID = u, u
	}
	// The run's cgroup is made while its worker is checked or started:
	// neither needs the other, and a standalone run's worker, ready
	// first, waits for both (0.3 ms of directories and limits on cgroup
	// v1 here, beside the adoption's 0.5-0.8 ms of /proc reads).
	var cgDone chan cgroupResult
	if r.cgroups != cgroupNone {
		// Tell the janitor before the groups exist, so that a broker
		// killed at any point after this leaves none it does not know of.
		name := "run-" + p.id
		p.dirs = cgroupDirs(r.cgroups, name)
		if r.cfg.OnCgroup != nil {
			r.cfg.OnCgroup(p.dirs, true)
		}
		cgDone = make(chan cgroupResult, 1)
		go func() {
			cg, err := newCgroup(r.cgroups, name, r.cfg.Limits.MemoryBytes, r.cfg.Limits.Pids)
			cgDone <- cgroupResult{cg, err}
		}()
	}
	// cgroupMade waits for the cgroup, once; p.release removes it.
	cgroupMade := func() error {
		if cgDone == nil {
			return nil
		}
		res := <-cgDone
		cgDone = nil
		p.cg = res.cg
		return res.err
	}
	fail := func(err error) (*prepared, error) {
		_ = cgroupMade()
		p.release(r)
		return nil, err
	}
	var fd int
	if a := r.adopt.Swap(nil); a != nil {
		wp, err := r.adopted(a, p.uid)
		switch {
		case err == nil:
			p.wp, fd = wp, a.Sock
		case errors.Is(err, errNotAdoptable):
			// A host that refuses unprivileged user namespaces: the
			// sysctls said so, and the worker found it too.
		case errors.Is(err, errNoWorkerUserns):
			// What take does for a worker of its own (WorkerUsernsEach).
			r.workerUserns.Store(false)
			if r.cfg.Log != nil {
				fmt.Fprintf(r.cfg.Log, "rex: workers get their user namespace from the broker: %v\n", err)
			}
		case r.cfg.Log != nil:
			fmt.Fprintf(r.cfg.Log, "rex: starting another worker: the one started at entry %v\n", err)
		}
	}
	if p.wp == nil {
		brokerEnd, workerEnd, err := ipc.SocketPair()
		if err != nil {
			return fail(fmt.Errorf("socketpair: %w", err))
		}
		userns := r.workerUserns.Load()
		p.wp, err = startWorker(r.cfg.WorkerPath, p.uid, hostGID, r.privileged, userns, workerEnd)
		workerEnd.Close()
		if err != nil {
			brokerEnd.Close()
			return fail(err)
		}
		p.checkUserns = userns && r.cfg.WorkerUsernsEach
		// The broker's end is raw: see ipc.PacketConn. The descriptor
		// moves out of the *os.File so that only pc owns and closes it.
		fd, err = unix.Dup(int(brokerEnd.Fd()))
		brokerEnd.Close()
		if err != nil {
			return fail(fmt.Errorf("socket: %w", err))
		}
		unix.CloseOnExec(fd)
	}
	p.pc = ipc.NewRawPacketConn(fd, 0)
	// Poll for the worker's next request while this is the only run: a
	// machine running several has no core to spare for it (SetSpin).
	p.pc.SetSpin(ipc.DefaultSpin, func() bool { return r.running.Load() == 1 })
	if r.cgroups != cgroupNone {
		err := cgroupMade()
		if err == nil {
			err = p.cg.add(p.wp.pid())
		}
		if err != nil {
			return fail(fmt.Errorf("cgroup setup failed: %w", err))
		}
	}
	return p, nil
}

// cgroupResult is newCgroup's, from the goroutine of prepare.
type cgroupResult struct {
	cg  *cgroup
	err error
}

// release kills whatever is left of the worker and frees its cgroup and
// uid, in that order: the uid goes back to the pool only once nothing runs
// under it.
func (p *prepared) release(r *Runner) {
	if p.pc != nil {
		p.pc.Close()
	}
	if p.wp != nil && !p.wp.exited {
		killWait(p.wp)
	}
	if p.cg != nil {
		p.cg.remove()
	}
	if p.dirs != nil && r.cfg.OnCgroup != nil {
		r.cfg.OnCgroup(p.dirs, false)
	}
	if r.privileged {
		r.uids.put(p.uid)
	}
}

// take hands a run a worker: a pooled one when there is one, else a new
// one. When other runs are in progress, a pooled worker is replaced at once
// (runs are arriving together: keep the pipeline full); when this run is
// alone, refill says to replace it once the run is over (see run), so that
// starting the replacement does not compete for the CPU with the script
// the run is waiting for.
func (r *Runner) take() (p *prepared, refill bool, err error) {
	p, refill, err = r.takeOne()
	if err != nil || !p.checkUserns {
		return p, refill, err
	}
	// Checked here rather than as it starts: by now (the policy parsed)
	// its entry point is long done, where a check at the start would
	// wait for it (Config.WorkerUsernsEach).
	if err := workerMadeUserns(p.wp, 5*time.Second); err != nil {
		p.release(r)
		if !errors.Is(err, errNoWorkerUserns) {
			return nil, false, err
		}
		r.workerUserns.Store(false)
		if r.cfg.Log != nil {
			fmt.Fprintf(r.cfg.Log, "rex: workers get their user namespace from the broker: %v\n", err)
		}
		p, err = r.prepare()
		return p, false, err
	}
	return p, refill, nil
}

func (r *Runner) takeOne() (p *prepared, refill bool, err error) {
	if ch := r.ahead.Swap(nil); ch != nil {
		res := <-*ch
		return res.p, false, res.err
	}
	if r.pool != nil {
		select {
		case p := <-r.pool:
			if r.running.Load() > 1 {
				r.refill()
				return p, false, nil
			}
			return p, true, nil
		default:
		}
	}
	p, err = r.prepare()
	return p, false, err
}

// refill starts one worker for the pool in the background.
func (r *Runner) refill() {
	if r.closed.Load() {
		return
	}
	r.active.Add(1)
	go func() {
		defer r.active.Done()
		p, err := r.prepare()
		if err != nil {
			return
		}
		select {
		case r.pool <- p:
			if r.closed.Load() { // Close may have drained before this put
				r.drain()
			}
		default:
			p.release(r)
		}
	}()
}

// Job is one run to do.
type Job struct {
	Principal  authz.Principal
	Policies   *authz.PolicySet
	Script     []byte
	ScriptName string
	Args       []byte // JSON object
	Timeout    time.Duration
	PeerPID    int
	// Learn, when set, makes the run allow and record every request (rex-exec
	// --learn, standalone only); see Learner.
	Learn *Learner
}

// run is the state of one run shared by its session and the audit log.
type run struct {
	id        string
	principal authz.Principal
	policies  *authz.PolicySet
	// memo is policies.Authorize for principal, remembering file
	// decisions; made on the first decision (see decide).
	memo      *authz.Memo
	memoOnce  sync.Once
	fs        *host.FS
	audit     *auditLog
	log       io.Writer
	written   atomic.Int64
	maxWrite  int64
	degraded  []string
	limitsHit []string
	// peakMemory is the worker's peak resident memory (its rusage),
	// reported in the run_end audit record.
	peakMemory int64
	learn      *Learner
	dnsServer  string
	mandatory  *mandatoryList
	redact     *redactor
}

func (r *run) logf(format string, args ...any) {
	if r.log != nil {
		fmt.Fprintf(r.log, "rex-broker: run %s: %s\n", r.id, fmt.Sprintf(format, args...))
	}
}

// chargeWrite counts bytes written against the run's write quota.
func (r *run) chargeWrite(n int64) error {
	if r.written.Add(n) > r.maxWrite {
		return ipc.Errorf(ipc.CodeLimit, "write quota of %d bytes for this run exhausted", r.maxWrite)
	}
	return nil
}

func newRunID() string {
	var b [8]byte
	// getrandom(2) itself: in a fresh process crypto/rand's first call
	// took 53-96 µs here against 26-33 µs, for the same kernel bytes, and
	// a standalone run pays it on its critical path. Eight bytes never
	// come back short.
	if n, err := unix.Getrandom(b[:], 0); err != nil || n != len(b) {
		_, _ = rand.Read(b[:])
	}
	return hex.EncodeToString(b[:])
}

// Run runs one script to completion and returns its result; it never
// returns nil. ctx cancels the run (the client went away).
func (r *Runner) Run(ctx context.Context, job *Job) *ipc.Result {
	r.active.Add(1)
	defer r.active.Done()
	start := time.Now()
	rn := &run{
		id: newRunID(), principal: job.Principal, policies: job.Policies, fs: r.fs,
		audit: r.audit, log: r.cfg.Log, maxWrite: r.cfg.Limits.WriteBytes, degraded: r.cfg.Degraded,
		learn: job.Learn, mandatory: r.mandatory, redact: r.redact,
	}
	rn.dnsServer = r.cfg.DNSServer
	var res *ipc.Result
	if len(r.cfg.Refuse) > 0 {
		res = failed(ipc.ErrInternal, "refusing to run scripts: sandbox layer missing on this host: %s (run `rex-broker doctor`; to accept the gap, start the broker with --allow-degraded=%s)",
			strings.Join(r.cfg.Refuse, ", "), strings.Join(r.cfg.Refuse, ","))
		rn.logf("refused: sandbox layer missing: %s", strings.Join(r.cfg.Refuse, ", "))
	} else {
		res = r.run(ctx, rn, job)
	}
	res.RunID = rn.id
	res.DurationMs = time.Since(start).Milliseconds()
	if res.Denials == nil {
		res.Denials = []ipc.Denial{}
	}
	if res.Logs == nil {
		res.Logs = []ipc.LogLine{}
	}
	if res.Metrics == nil {
		res.Metrics = []ipc.Metric{}
	}
	if res.Alarms == nil {
		res.Alarms = []ipc.Alarm{}
	}
	if rn.written.Load() > rn.maxWrite {
		rn.limitsHit = append(rn.limitsHit, "write")
	}
	r.audit.runEnd(rn, res, rn.limitsHit)
	return res
}

func failed(errType, format string, args ...any) *ipc.Result {
	return &ipc.Result{Status: ipc.StatusError, Error: &ipc.ResultError{ErrorType: errType, Message: fmt.Sprintf(format, args...)}}
}

func (r *Runner) run(ctx context.Context, rn *run, job *Job) *ipc.Result {
	if len(job.Script) > ipc.MaxScript {
		return failed(ipc.ErrValidation, "script is %d bytes; the limit is %d", len(job.Script), ipc.MaxScript)
	}
	if len(job.Args) == 0 {
		job.Args = []byte("{}")
	}
	var argsObj map[string]json.RawMessage
	if err := json.Unmarshal(job.Args, &argsObj); err != nil {
		return failed(ipc.ErrValidation, "args must be a JSON object: %v", err)
	}
	if job.Policies == nil {
		return failed(ipc.ErrValidation, "no policy loaded")
	}
	timeout := r.cfg.Limits.Timeout
	if job.Timeout > 0 && job.Timeout < timeout {
		timeout = job.Timeout
	}
	r.running.Add(1)
	defer r.running.Add(-1)
	p, refill, err := r.take()
	if err != nil {
		var capErr errCapacity
		if errors.As(err, &capErr) {
			return failed(ipc.ErrResourceLimit, "broker at capacity: %v", err)
		}
		return failed(ipc.ErrInternal, "%v", err)
	}
	// Cleanup, and the pool's refill, happen after the result is returned,
	// but Wait covers them.
	r.active.Add(1)
	defer func() {
		if r.cfg.OneRun {
			// Its process waits for the cleanup before it prints the
			// result (Wait): a goroutine to hand it to, and the wake-up
			// back, would only add to it.
			p.release(r)
			r.active.Done()
			return
		}
		go func() {
			defer r.active.Done()
			p.release(r)
			if refill {
				r.refill()
			}
		}()
	}()
	wp, pc, cg := p.wp, p.pc, p.cg
	rn.id = p.id
	if len(rn.degraded) > 0 {
		rn.logf("running degraded, without: %s (--allow-degraded)", strings.Join(rn.degraded, ", "))
	}
	r.audit.runStart(rn, job, timeout, &AuditLimits{
		MemoryBytes: r.cfg.Limits.MemoryBytes, Pids: r.cfg.Limits.Pids, OutputBytes: r.cfg.Limits.StdoutBytes,
		WriteBytes: r.cfg.Limits.WriteBytes, WorkerUID: p.uid,
	})

	deadline := time.Now().Add(timeout)
	sess := &session{run: rn, pc: pc}
	sessDone := make(chan error, 1)
	go func() { sessDone <- sess.serve(deadline.Add(time.Second)) }()

	stderrCh := make(chan []byte, 1)
	go func() { stderrCh <- readCapped(wp.stderr, 64<<10) }()

	resultCh := make(chan frameResult, 1)
	go func() {
		var wr ipc.WorkerResult
		err := ipc.ReadFrameAs(wp.stdout, ipc.MsgWorkerResult, &wr)
		// Hand the result over first: EOF comes only once every thread
		// of the worker is gone, a millisecond later, and nothing after
		// the frame can change the run. Draining keeps a worker that
		// writes on from blocking until it is killed.
		resultCh <- frameResult{&wr, err}
		_, _ = io.Copy(io.Discard, wp.stdout)
	}()

	startMsg := &ipc.Start{
		Version: ipc.Version, RunID: rn.id, Script: job.Script, ScriptName: job.ScriptName,
		Args: job.Args, MaxStdout: r.cfg.Limits.StdoutBytes, ExitAfterResult: r.cfg.OneRun,
	}
	go func() {
		_ = ipc.WriteFrame(wp.stdin, ipc.MsgStart, startMsg)
		wp.stdin.Close()
	}()

	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var why string // set when the broker ended the run
	var fr frameResult
	select {
	case fr = <-resultCh:
	case <-timer.C:
		why = "timeout"
	case <-ctx.Done():
		why = "cancelled"
	case err := <-sessDone:
		// Put it back for the collection below, which always reads it.
		sessDone <- err
		if err != nil {
			why = "violation"
			rn.logf("%v", err)
		} else {
			// The worker closed its socket (or sent an empty packet, which
			// reads as EOF) but may still run: its result is due within
			// the same time limit, or the run never ends.
			select {
			case fr = <-resultCh:
			case <-timer.C:
				why = "timeout"
			case <-ctx.Done():
				why = "cancelled"
			}
		}
	}
	if why != "" {
		_ = wp.kill()
		fr = <-resultCh
	}
	if why == "" && fr.err == nil {
		// The worker reported: nothing it does from now on can change the
		// run. Kill it and leave reaping to release, off the run's clock;
		// only a session that broke the protocol still spoils the result.
		if !r.cfg.OneRun {
			rn.peakMemory = peakRSS(wp.pid())
		}
		_ = wp.kill()
		if rn.peakMemory == 0 {
			// It had exited already (a zombie has no memory to read), or
			// it is a OneRun worker, which exits as soon as its result is
			// written: reaping it is immediate, or as long as its exit,
			// and its rusage has the figure. It was just killed, so it is
			// reaped here, not in a goroutine behind a timer: a second
			// SIGKILL after a grace period would change nothing.
			_ = wp.wait()
			closeFiles(wp.stdout, wp.stderr)
			rn.peakMemory = rusagePeak(wp)
		}
		_ = pc.Shutdown()
		if err := <-sessDone; err != nil {
			rn.logf("%v", err)
			return &ipc.Result{Denials: sess.deniedList(), Status: ipc.StatusError,
				Error: &ipc.ResultError{ErrorType: ipc.ErrCommunication, Message: "worker broke the protocol; session ended"}}
		}
		res := &ipc.Result{Denials: sess.deniedList()}
		r.fillFromWorker(res, fr.wr)
		if fr.wr.StdoutTruncated || len(fr.wr.Stdout) > r.cfg.Limits.StdoutBytes {
			rn.limitsHit = append(rn.limitsHit, "output")
		}
		return res
	}
	// The script is dead or ended without a result: wait for the worker,
	// since how it died says what happened.
	waitErr := waitOrKill(wp, 2*time.Second)
	rn.peakMemory = rusagePeak(wp)
	// Wake the session if it still waits for a packet; the descriptor is
	// closed by release, once the session can no longer touch it.
	_ = pc.Shutdown()
	sessErr := <-sessDone
	stderr := <-stderrCh

	res := &ipc.Result{Denials: sess.deniedList()}
	switch {
	case why == "timeout":
		rn.limitsHit = append(rn.limitsHit, "timeout")
		res.Status, res.Error = ipc.StatusError, &ipc.ResultError{ErrorType: ipc.ErrTimeout,
			Message: fmt.Sprintf("script exceeded its time limit of %v", timeout)}
	case why == "cancelled":
		msg := "run cancelled: the client went away"
		if errors.Is(context.Cause(ctx), ErrShutdown) {
			msg = "run cancelled: " + ErrShutdown.Error()
		}
		res.Status, res.Error = ipc.StatusError, &ipc.ResultError{ErrorType: ipc.ErrCommunication, Message: msg}
	case why == "violation" || sessErr != nil:
		res.Status, res.Error = ipc.StatusError, &ipc.ResultError{ErrorType: ipc.ErrCommunication,
			Message: "worker broke the protocol; session ended"}
	case cg != nil && cg.oomKilled():
		rn.limitsHit = append(rn.limitsHit, "memory")
		res.Status, res.Error = ipc.StatusError, &ipc.ResultError{ErrorType: ipc.ErrResourceLimit,
			Message: fmt.Sprintf("script exceeded its memory limit of %d MiB", r.cfg.Limits.MemoryBytes>>20)}
	case fr.err != nil:
		res.Status, res.Error = ipc.StatusError, classifyCrash(waitErr, stderr, r.cfg.Limits)
		rn.logf("worker ended without a result (%v): %s", waitErr, firstLines(stderr, 5))
		if wp.exitCode() == ipc.WorkerExitUserns &&
			r.workerUserns.CompareAndSwap(true, false) {
			// The host stopped allowing what the start-up probe saw (a
			// sysctl, an LSM policy): the next workers get their user
			// namespace from the broker, as on a host that never allowed it.
			rn.logf("workers get their user namespace from the broker from now on")
		}
	default:
		r.fillFromWorker(res, fr.wr)
		if fr.wr.StdoutTruncated || len(fr.wr.Stdout) > r.cfg.Limits.StdoutBytes {
			rn.limitsHit = append(rn.limitsHit, "output")
		}
	}
	if res.Error != nil && res.Error.ErrorType == ipc.ErrResourceLimit && len(rn.limitsHit) == 0 && rn.written.Load() <= rn.maxWrite {
		rn.limitsHit = append(rn.limitsHit, "memory")
	}
	return res
}

// rusagePeak is a reaped worker's peak resident memory, or 0.
func rusagePeak(wp *workerProc) int64 {
	if wp.exited {
		return wp.usage.Maxrss << 10 // the kernel reports KiB
	}
	return 0
}

// peakRSS reads a live process's peak resident memory (VmHWM), or 0.
func peakRSS(pid int) int64 {
	b, err := readSysFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

type frameResult struct {
	wr  *ipc.WorkerResult
	err error
}

// fillFromWorker copies what the worker reported. The worker is untrusted:
// it may only claim a denial the broker itself recorded, and only the
// error types a script can cause.
func (r *Runner) fillFromWorker(res *ipc.Result, wr *ipc.WorkerResult) {
	res.Output = wr.Output
	if len(res.Output) > 0 && !json.Valid(res.Output) {
		res.Output = nil
	}
	res.Stdout = capStdout(wr.Stdout, wr.StdoutTruncated, r.cfg.Limits.StdoutBytes)
	res.Logs, res.Metrics, res.Alarms = wr.Logs, wr.Metrics, wr.Alarms
	if wr.ErrType == "" {
		res.Status = ipc.StatusSuccess
		return
	}
	res.Status = ipc.StatusError
	e := &ipc.ResultError{ErrorType: wr.ErrType, Message: wr.ErrMessage}
	switch wr.ErrType {
	case ipc.ErrAccessDenied:
		if wr.Denial == nil || !containsDenial(res.Denials, *wr.Denial) {
			e = &ipc.ResultError{ErrorType: ipc.ErrScript, Message: wr.ErrMessage}
			break
		}
		e.Action, e.Resource, e.PolicyIDs = wr.Denial.Action, wr.Denial.Resource, nonNil(wr.Denial.PolicyIDs)
	case ipc.ErrScript, ipc.ErrResourceLimit, ipc.ErrTimeout, ipc.ErrCommunication, ipc.ErrInternal, ipc.ErrValidation:
	default:
		e.ErrorType = ipc.ErrInternal
	}
	res.Error = e
}

func containsDenial(list []ipc.Denial, d ipc.Denial) bool {
	for _, x := range list {
		if x.Action == d.Action && x.Resource == d.Resource {
			return true
		}
	}
	return false
}

const truncMarker = "\n[rex: stdout truncated at %d bytes]"

func capStdout(s string, truncated bool, max int) string {
	if len(s) > max {
		s, truncated = s[:max], true
	}
	if truncated {
		s += fmt.Sprintf(truncMarker, max)
	}
	return s
}

// classifyCrash explains a worker that died without writing its result.
func classifyCrash(waitErr error, stderr []byte, lim Limits) *ipc.ResultError {
	var ee interface{ Sys() any }
	if errors.As(waitErr, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok {
			switch {
			case ws.Signaled() && ws.Signal() == syscall.SIGSYS:
				return &ipc.ResultError{ErrorType: ipc.ErrInternal, Message: "worker was killed by the seccomp filter (a forbidden system call)"}
			case ws.Signaled() && ws.Signal() == syscall.SIGKILL:
				return &ipc.ResultError{ErrorType: ipc.ErrResourceLimit, Message: fmt.Sprintf("worker was killed, most likely for exceeding its memory limit of %d MiB", lim.MemoryBytes>>20)}
			case ws.Signaled() && ws.Signal() == syscall.SIGXFSZ:
				return &ipc.ResultError{ErrorType: ipc.ErrResourceLimit, Message: "script exceeded its file size limit"}
			}
		}
	}
	if bytes.Contains(stderr, []byte("out of memory")) {
		return &ipc.ResultError{ErrorType: ipc.ErrResourceLimit, Message: fmt.Sprintf("script exceeded its memory limit of %d MiB", lim.MemoryBytes>>20)}
	}
	if bytes.Contains(stderr, []byte("goroutine stack exceeds")) {
		return &ipc.ResultError{ErrorType: ipc.ErrResourceLimit, Message: "script exceeded its stack limit"}
	}
	msg := "worker ended without a result"
	if l := firstLines(stderr, 1); l != "" {
		msg += ": " + l
	}
	return &ipc.ResultError{ErrorType: ipc.ErrInternal, Message: msg}
}

func firstLines(b []byte, n int) string {
	lines := strings.SplitN(strings.TrimSpace(string(b)), "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, " | ")
}

func killWait(wp *workerProc) {
	_ = wp.kill()
	_ = wp.wait()
	closeFiles(wp.stdin, wp.stdout, wp.stderr)
}

// waitOrKill waits for the worker to exit, killing it after grace.
func waitOrKill(wp *workerProc, grace time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- wp.wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(grace):
		_ = wp.kill()
		err = <-done
	}
	closeFiles(wp.stdout, wp.stderr)
	return err
}
