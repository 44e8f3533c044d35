package ipc

import (
	"encoding/json"
	"strconv"
)

// AppendJSON appends r's JSON to b: the bytes json.Marshal(r) writes
// (TestResultAppendJSON compares them), with the object assembled here and
// only its leaves — strings, the raw output, and the log, metric and alarm
// lists when there are any — left to encoding/json. rex-exec prints one
// result per process, and the reflection json.Marshal(r) needs first
// (encoders for Result and every type in it) costs 0.2–2 ms there, as much
// as the broker's whole part of a short run. Like json.Marshal it fails,
// returning b unchanged, on an output that is not valid JSON.
func (r *Result) AppendJSON(b []byte) ([]byte, error) {
	w := jsonWriter{b: b}
	w.str(`{"status":`, r.Status)
	if len(r.Output) > 0 {
		w.leaf(`,"output":`, r.Output)
	}
	w.str(`,"stdout":`, r.Stdout)
	if e := r.Error; e != nil {
		w.str(`,"error":{"error_type":`, e.ErrorType)
		w.str(`,"message":`, e.Message)
		if e.Action != "" {
			w.str(`,"action":`, e.Action)
		}
		if e.Resource != "" {
			w.str(`,"resource":`, e.Resource)
		}
		if len(e.PolicyIDs) > 0 {
			w.strings(`,"policy_ids":`, e.PolicyIDs)
		}
		w.b = append(w.b, '}')
	}
	switch {
	case r.Denials == nil:
		w.b = append(w.b, `,"denials":null`...)
	default:
		w.b = append(w.b, `,"denials":[`...)
		for i, d := range r.Denials {
			if i > 0 {
				w.b = append(w.b, ',')
			}
			w.str(`{"action":`, d.Action)
			w.str(`,"resource":`, d.Resource)
			w.strings(`,"policy_ids":`, d.PolicyIDs)
			w.b = append(w.b, '}')
		}
		w.b = append(w.b, ']')
	}
	w.list(`,"logs":`, r.Logs == nil, len(r.Logs), r.Logs)
	w.list(`,"metrics":`, r.Metrics == nil, len(r.Metrics), r.Metrics)
	w.list(`,"alarms":`, r.Alarms == nil, len(r.Alarms), r.Alarms)
	w.str(`,"run_id":`, r.RunID)
	w.b = append(w.b, `,"duration_ms":`...)
	w.b = strconv.AppendInt(w.b, r.DurationMs, 10)
	w.b = append(w.b, '}')
	if w.err != nil {
		return b, w.err
	}
	return w.b, nil
}

// jsonWriter appends JSON to b; the first error sticks.
type jsonWriter struct {
	b   []byte
	err error
}

// leaf appends prefix and v as json.Marshal writes it.
func (w *jsonWriter) leaf(prefix string, v any) {
	if w.err != nil {
		return
	}
	j, err := json.Marshal(v)
	if err != nil {
		w.err = err
		return
	}
	w.b = append(append(w.b, prefix...), j...)
}

func (w *jsonWriter) str(prefix, s string) { w.leaf(prefix, s) }

// strings appends a string list: null when nil, as json.Marshal does.
func (w *jsonWriter) strings(prefix string, list []string) {
	if list == nil {
		w.b = append(append(w.b, prefix...), "null"...)
		return
	}
	w.b = append(append(w.b, prefix...), '[')
	for i, s := range list {
		if i > 0 {
			w.b = append(w.b, ',')
		}
		w.leaf("", s)
	}
	w.b = append(w.b, ']')
}

// list appends a list that is nil, empty, or left to json.Marshal.
func (w *jsonWriter) list(prefix string, isNil bool, n int, v any) {
	switch {
	case isNil:
		w.b = append(append(w.b, prefix...), "null"...)
	case n == 0:
		w.b = append(append(w.b, prefix...), "[]"...)
	default:
		w.leaf(prefix, v)
	}
}
