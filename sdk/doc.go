// Package sdk holds the Risor modules that scripts see (fs, log, metrics,
// alarms, the broker-backed os) and the explicit allowlist of globals. Every
// function that touches the host is a request to the broker over ipc.
//
// Trust: untrusted. It runs inside the locked-down worker, its inputs are the
// script's, and nothing it decides is relied on by the broker. It never
// imports broker or authz.
package sdk
