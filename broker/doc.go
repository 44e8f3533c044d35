// Package broker is the trusted side of rex: it accepts runs (from a daemon
// socket, or in-process for standalone rex-exec), starts one sandboxed worker
// per run, serves the worker's requests — decode, validate, authorise with
// Cedar, then perform through package broker/host — and builds the result.
//
// Trust: root in daemon mode (rex-broker), the invoking user in standalone
// mode (rex-exec --policy). Its inputs — every worker packet, every client
// frame — are controlled by untrusted code; the identity of a run comes only
// from SO_PEERCRED. It never imports Risor or sdk.
package broker
