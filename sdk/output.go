package sdk

import (
	"os"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/rex-sh/rex/ipc"
)

// Caps on what one run may publish. They keep a WorkerResult well inside
// ipc.MaxFrame, however the script behaves.
const (
	// DefaultMaxStdout applies when the Start frame carries no cap.
	DefaultMaxStdout = 1 << 20
	// MaxRecords caps log lines, metrics and alarms, each.
	MaxRecords = 1000
	// MaxLogMessage caps one log message; longer ones are cut with a marker.
	MaxLogMessage = 4 << 10
	// MaxAlarmDetails caps the JSON form of one alarm's details.
	MaxAlarmDetails = 4 << 10
	// MaxDimensions caps the dimensions of one metric.
	MaxDimensions = 16
)

const truncMarker = "…[truncated]"

// Caller sends one request to the broker. *ipc.Client satisfies it; tests
// use a fake. A failed request returns an *ipc.Error whose Message is public
// and is shown to the script unchanged.
type Caller interface {
	Call(op ipc.Op, req, resp any) (*os.File, error)
}

// Output collects everything a run publishes besides its final value:
// captured stdout and the log, metric and alarm records. The VM is single
// threaded, but Risor's file objects close from their own goroutine, so
// writes are locked anyway.
type Output struct {
	mu        sync.Mutex
	maxStdout int
	stdout    []byte
	truncated bool
	logs      []ipc.LogLine
	metrics   []ipc.Metric
	alarms    []ipc.Alarm
	now       func() time.Time
}

// NewOutput returns an Output that keeps at most maxStdout bytes of stdout
// (DefaultMaxStdout when maxStdout <= 0).
func NewOutput(maxStdout int) *Output {
	if maxStdout <= 0 {
		maxStdout = DefaultMaxStdout
	}
	return &Output{maxStdout: maxStdout, now: time.Now}
}

// SetMaxStdout changes the stdout cap (DefaultMaxStdout when max <= 0). It
// is meant for an Output made before its run's limits were known, and
// applies to writes from then on.
func (o *Output) SetMaxStdout(max int) {
	if max <= 0 {
		max = DefaultMaxStdout
	}
	o.mu.Lock()
	o.maxStdout = max
	o.mu.Unlock()
}

// Write appends to the captured stdout. Past the cap the rest is dropped and
// the output is marked truncated; it never fails, so a chatty script is not
// turned into a failing one by its prints.
func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	room := o.maxStdout - len(o.stdout)
	if len(p) > room {
		o.stdout = append(o.stdout, p[:max(room, 0)]...)
		o.truncated = true
		return len(p), nil
	}
	o.stdout = append(o.stdout, p...)
	return len(p), nil
}

// Stdout returns the captured stdout and whether it was truncated. A cut in
// the middle of a UTF-8 sequence is trimmed so the text stays valid.
func (o *Output) Stdout() (string, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	b := o.stdout
	if o.truncated {
		for i := 1; i <= utf8.UTFMax && i <= len(b); i++ {
			if utf8.RuneStart(b[len(b)-i]) {
				if !utf8.FullRune(b[len(b)-i:]) {
					b = b[:len(b)-i]
				}
				break
			}
		}
	}
	return string(b), o.truncated
}

// Logs returns the published log lines.
func (o *Output) Logs() []ipc.LogLine {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]ipc.LogLine(nil), o.logs...)
}

// Metrics returns the published metrics.
func (o *Output) Metrics() []ipc.Metric {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]ipc.Metric(nil), o.metrics...)
}

// Alarms returns the published alarms.
func (o *Output) Alarms() []ipc.Alarm {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]ipc.Alarm(nil), o.alarms...)
}

func (o *Output) timestamp() string {
	return o.now().UTC().Format(time.RFC3339Nano)
}

func (o *Output) addLog(l ipc.LogLine) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.logs) >= MaxRecords {
		return ipc.Errorf(ipc.CodeLimit, "log limit reached: a run may publish at most %d log lines", MaxRecords)
	}
	o.logs = append(o.logs, l)
	return nil
}

func (o *Output) addMetric(m ipc.Metric) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.metrics) >= MaxRecords {
		return ipc.Errorf(ipc.CodeLimit, "metric limit reached: a run may publish at most %d metrics", MaxRecords)
	}
	o.metrics = append(o.metrics, m)
	return nil
}

func (o *Output) addAlarm(a ipc.Alarm) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.alarms) >= MaxRecords {
		return ipc.Errorf(ipc.CodeLimit, "alarm limit reached: a run may publish at most %d alarms", MaxRecords)
	}
	o.alarms = append(o.alarms, a)
	return nil
}
