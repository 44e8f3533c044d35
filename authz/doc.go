// Package authz is a pure decision function: it loads and validates Cedar
// policies against rex's Rex-compatible schema, canonicalises paths, builds
// the principal and resource entities, and answers allow or deny with the
// policy ids that decided. It knows nothing of the wire or the host.
//
// Trust: runs in the broker (root) and in rex-policy; its inputs are the
// operator's policy files and requests already decoded by the broker.
package authz
