package ipc

import "encoding/json"

// Error types of a run's result (DESIGN §2).
const (
	ErrAccessDenied  = "ACCESS_DENIED_EXCEPTION"
	ErrScript        = "SCRIPT_EXCEPTION"
	ErrValidation    = "VALIDATION_EXCEPTION"
	ErrTimeout       = "TIMEOUT_EXCEPTION"
	ErrResourceLimit = "RESOURCE_LIMIT_EXCEPTION"
	ErrCommunication = "COMMUNICATION_EXCEPTION"
	ErrInternal      = "INTERNAL_EXCEPTION"
)

// Result statuses.
const (
	StatusSuccess = "SUCCESS"
	StatusError   = "ERROR"
)

// Result is what a run produces: a superset of Rex's result. The broker
// builds it; rex-exec prints it as JSON.
type Result struct {
	Status     string          `msgpack:"status" json:"status"`
	Output     json.RawMessage `msgpack:"output" json:"output,omitempty"`
	Stdout     string          `msgpack:"stdout" json:"stdout"`
	Error      *ResultError    `msgpack:"error" json:"error,omitempty"`
	Denials    []Denial        `msgpack:"denials" json:"denials"`
	Logs       []LogLine       `msgpack:"logs" json:"logs"`
	Metrics    []Metric        `msgpack:"metrics" json:"metrics"`
	Alarms     []Alarm         `msgpack:"alarms" json:"alarms"`
	RunID      string          `msgpack:"run_id" json:"run_id"`
	DurationMs int64           `msgpack:"duration_ms" json:"duration_ms"`
}

// ResultError is the error of a failed run. Action, Resource and PolicyIDs
// are set for ACCESS_DENIED_EXCEPTION only.
type ResultError struct {
	ErrorType string   `msgpack:"error_type" json:"error_type"`
	Message   string   `msgpack:"message" json:"message"`
	Action    string   `msgpack:"action" json:"action,omitempty"`
	Resource  string   `msgpack:"resource" json:"resource,omitempty"`
	PolicyIDs []string `msgpack:"policy_ids" json:"policy_ids,omitempty"`
}

// LogLine is one record published with log.info and friends.
type LogLine struct {
	Level   string `msgpack:"level" json:"level"`
	Message string `msgpack:"message" json:"message"`
	Time    string `msgpack:"time" json:"time"`
}

// Metric is one value published with metrics.publish.
type Metric struct {
	Name       string            `msgpack:"name" json:"name"`
	Value      float64           `msgpack:"value" json:"value"`
	Unit       string            `msgpack:"unit" json:"unit,omitempty"`
	Dimensions map[string]string `msgpack:"dimensions" json:"dimensions,omitempty"`
	Time       string            `msgpack:"time" json:"time"`
}

// Alarm is one alarm published with alarms.publish. Details is JSON.
type Alarm struct {
	Type    string          `msgpack:"type" json:"type"`
	Details json.RawMessage `msgpack:"details" json:"details,omitempty"`
	Time    string          `msgpack:"time" json:"time"`
}

// ExitCode maps a result to rex-exec's exit code (DESIGN §2).
func ExitCode(r *Result) int {
	if r.Status == StatusSuccess {
		return 0
	}
	if r.Error == nil {
		return 1
	}
	switch r.Error.ErrorType {
	case ErrAccessDenied:
		return 3
	case ErrScript:
		return 4
	case ErrTimeout, ErrResourceLimit:
		return 5
	case ErrValidation:
		return 2
	default:
		return 1
	}
}
