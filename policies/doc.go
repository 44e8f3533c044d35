// Package policies holds rex's Cedar schema, embedded so that the broker and
// rex-policy validate against exactly the same text, plus example policies.
//
// Trust: data. It is compiled into the broker (root) and rex-policy; its
// content is written by rex's developers, never by a caller.
package policies
