// Package jsonstr appends Go strings as JSON string literals, byte for
// byte as encoding/json's Marshal writes them, without reflection or
// allocation: for hand-assembled JSON on hot paths (the broker's audit
// records, one per decision).
//
// Trust: a pure function of its input; no I/O.
package jsonstr
