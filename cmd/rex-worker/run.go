//go:build !rexevil

package main

import (
	"github.com/rex-sh/rex/ipc"
	"github.com/rex-sh/rex/worker"
)

func run(c *ipc.Client) func(*ipc.Start) *ipc.WorkerResult { return worker.Prepare(c) }
