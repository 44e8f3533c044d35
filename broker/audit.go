package broker

import (
	"io"
	"os"
	"sync"
	"time"

	"github.com/rex-sh/rex/authz"
	"github.com/rex-sh/rex/ipc"
)

// auditLog writes one JSON line per decision and per run start and end.
// Records are built only from broker state: nothing the script sends is
// copied into a field that could be mistaken for another record.
type auditLog struct {
	mu  sync.Mutex
	w   io.Writer
	buf []byte // the record being written, under mu
}

func newAuditLog(w io.Writer) *auditLog { return &auditLog{w: w} }

// AuditRecord is the shape of one audit line.
type AuditRecord struct {
	Time      string   `json:"time"`
	Event     string   `json:"event"` // decision, run_start, run_end
	RunID     string   `json:"run_id"`
	Principal string   `json:"principal"`
	UID       uint32   `json:"uid"`
	PID       int      `json:"pid,omitempty"`
	Action    string   `json:"action,omitempty"`
	Resource  string   `json:"resource,omitempty"`
	Decision  string   `json:"decision,omitempty"` // allow, deny
	PolicyIDs []string `json:"policy_ids,omitempty"`
	Errors    []string `json:"errors,omitempty"`
	Status    string   `json:"status,omitempty"`
	ErrorType string   `json:"error_type,omitempty"`
	Timeout   string   `json:"timeout,omitempty"`
	Duration  int64    `json:"duration_ms,omitempty"`
	// Limits are the run's effective limits (run_start); LimitsHit names
	// those the run ran into (run_end): timeout, memory, output, write.
	Limits    *AuditLimits `json:"limits,omitempty"`
	LimitsHit []string     `json:"limits_hit,omitempty"`
	// Degraded names the sandbox layers the operator accepted as missing
	// with --allow-degraded, on every run they apply to.
	Degraded []string `json:"degraded,omitempty"`
	Reason   string   `json:"reason,omitempty"`
	// PeakMemory is the worker's peak resident memory (run_end).
	PeakMemory int64 `json:"peak_memory_bytes,omitempty"`
}

// AuditLimits is the limits part of a run_start record.
type AuditLimits struct {
	MemoryBytes int64  `json:"memory_bytes"`
	Pids        int64  `json:"pids"`
	OutputBytes int    `json:"output_bytes"`
	WriteBytes  int64  `json:"write_bytes"`
	WorkerUID   uint32 `json:"worker_uid,omitempty"`
}

// AuditFile is an append-only audit log file that can be reopened at the
// same path, for log rotation (SIGUSR1 after the file was renamed).
type AuditFile struct {
	mu   sync.Mutex
	path string
	f    *os.File
}

// OpenAuditFile opens path for appending, creating it 0600.
func OpenAuditFile(path string) (*AuditFile, error) {
	a := &AuditFile{path: path}
	return a, a.Reopen()
}

// Reopen opens the path again and switches to it; on failure the old file
// stays in use, so no record is lost to a failed rotation.
func (a *AuditFile) Reopen() error {
	f, err := os.OpenFile(a.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	a.mu.Lock()
	old := a.f
	a.f = f
	a.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

// Write writes one record; records are written whole in one write(2) on an
// O_APPEND file, so concurrent writers never interleave lines.
func (a *AuditFile) Write(b []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.f.Write(b)
}

// Close closes the file.
func (a *AuditFile) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.f.Close()
}

func (a *auditLog) write(rec *AuditRecord) {
	if a.w == nil {
		return
	}
	rec.Time = time.Now().UTC().Format(time.RFC3339Nano)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.buf = append(rec.appendJSON(a.buf[:0]), '\n')
	_, _ = a.w.Write(a.buf)
	if cap(a.buf) > maxAuditBuffer {
		a.buf = nil // one long record (a long error list) is not kept
	}
}

// maxAuditBuffer is the largest encoding buffer the audit log keeps for the
// next record.
const maxAuditBuffer = 16 << 10

// appendDecision appends the line recording one decision to b, for the
// session to write with writeLines (see session.auditQuiet). It takes the
// action and resource rather than their strings: Cedar's quoting is a
// measurable part of a request's cost, paid here only when there is a log
// to write.
func (a *auditLog) appendDecision(b []byte, r *run, act authz.Action, res authz.Resource, d authz.Decision) []byte {
	if a.w == nil {
		return b
	}
	dec := "deny"
	if d.Allow {
		dec = "allow"
	}
	rec := AuditRecord{
		Time: time.Now().UTC().Format(time.RFC3339Nano), Event: "decision", RunID: r.id,
		Principal: r.principal.Name, UID: r.principal.UID, Action: act.String(), Resource: res.String(),
		Decision: dec, PolicyIDs: d.PolicyIDs, Errors: d.Errors,
	}
	return append(rec.appendJSON(b), '\n')
}

// writeLines writes whole audit lines in one write(2).
func (a *auditLog) writeLines(b []byte) {
	if a.w == nil || len(b) == 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	_, _ = a.w.Write(b)
}

func (a *auditLog) runStart(r *run, job *Job, timeout time.Duration, lim *AuditLimits) {
	a.write(&AuditRecord{
		Event: "run_start", RunID: r.id, Principal: r.principal.Name, UID: r.principal.UID,
		PID: job.PeerPID, Timeout: timeout.String(), Limits: lim, Degraded: r.degraded,
	})
}

// refused records a connection turned away before any run started.
func (a *auditLog) refused(p string, uid uint32, pid int, reason string) {
	a.write(&AuditRecord{Event: "refused", Principal: p, UID: uid, PID: pid, Decision: "deny", Reason: reason})
}

func (a *auditLog) runEnd(r *run, res *ipc.Result, hit []string) {
	rec := &AuditRecord{
		Event: "run_end", RunID: r.id, Principal: r.principal.Name, UID: r.principal.UID,
		Status: res.Status, Duration: res.DurationMs, LimitsHit: hit, Degraded: r.degraded,
		PeakMemory: r.peakMemory,
	}
	if res.Error != nil {
		rec.ErrorType = res.Error.ErrorType
	}
	a.write(rec)
}
