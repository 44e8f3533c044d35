// Package ipc is rex's wire protocol, written down once: the message types,
// caps and version (protocol.go), the messages (messages.go, result.go), the
// error codes (errors.go), a bounds-checked msgpack codec and stream framing
// (codec.go), and the SOCK_SEQPACKET transport with SCM_RIGHTS (packet.go,
// client.go). ipc/PROTOCOL.md describes the frames and the sequence of a run.
//
// Trust: none of its own. It runs in every process (rex-exec, the broker as
// root, the sandboxed worker) and its decoders assume the peer is hostile:
// every length is checked against a cap before anything is allocated,
// nesting is bounded, and nothing panics on bad input. The codec writes and
// reads fields through unsafe pointers at offsets taken from reflect when a
// type's plan is built (decode.go says why); the input chooses values,
// never an address or a type. It imports no other rex package.
package ipc
