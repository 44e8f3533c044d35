package broker

import (
	"encoding/json"
	"io"
	"sync"
	"time"

	"github.com/rex-sh/rex/authz"
	"github.com/rex-sh/rex/ipc"
)

// auditLog writes one JSON line per decision and per run start and end.
// Records are built only from broker state: nothing the script sends is
// copied into a field that could be mistaken for another record.
type auditLog struct {
	mu sync.Mutex
	w  io.Writer
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
}

func (a *auditLog) write(rec *AuditRecord) {
	if a.w == nil {
		return
	}
	rec.Time = time.Now().UTC().Format(time.RFC3339Nano)
	b, err := json.Marshal(rec)
	if err != nil {
		return
	}
	b = append(b, '\n')
	a.mu.Lock()
	defer a.mu.Unlock()
	_, _ = a.w.Write(b)
}

func (a *auditLog) decision(r *run, action, resource string, d authz.Decision) {
	dec := "deny"
	if d.Allow {
		dec = "allow"
	}
	a.write(&AuditRecord{
		Event: "decision", RunID: r.id, Principal: r.principal.Name, UID: r.principal.UID,
		Action: action, Resource: resource, Decision: dec, PolicyIDs: d.PolicyIDs, Errors: d.Errors,
	})
}

func (a *auditLog) runStart(r *run, job *Job, timeout time.Duration) {
	a.write(&AuditRecord{
		Event: "run_start", RunID: r.id, Principal: r.principal.Name, UID: r.principal.UID,
		PID: job.PeerPID, Timeout: timeout.String(),
	})
}

func (a *auditLog) runEnd(r *run, res *ipc.Result) {
	rec := &AuditRecord{
		Event: "run_end", RunID: r.id, Principal: r.principal.Name, UID: r.principal.UID,
		Status: res.Status, Duration: res.DurationMs,
	}
	if res.Error != nil {
		rec.ErrorType = res.Error.ErrorType
	}
	a.write(rec)
}
