//go:build !rexthin

package main

import (
	"testing"

	"github.com/rex-sh/rex/broker"
)

// The engine's entry point gives its worker the uid a standalone Runner
// hands its first run: otherwise the Runner's check refuses every worker
// the entry point starts, and each run starts a second one.
func TestPrespawnUID(t *testing.T) {
	if prespawnUID != broker.DefaultWorkerUIDBase {
		t.Fatalf("the entry point's worker uid %d, the Runner's first %d", prespawnUID, broker.DefaultWorkerUIDBase)
	}
}
