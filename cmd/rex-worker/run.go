//go:build !rexevil

package main

import (
	"github.com/rex-sh/rex/ipc"
	"github.com/rex-sh/rex/worker"
)

func run(start *ipc.Start, c *ipc.Client) *ipc.WorkerResult { return worker.Run(start, c) }
