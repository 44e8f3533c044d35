package broker

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/rex-sh/rex/authz"
	"github.com/rex-sh/rex/internal/testutil"
	"github.com/rex-sh/rex/ipc"
)

// A root Runner asked for WorkerUserns lets the workers make their own user
// namespace only once a probe worker has shown that it can, here the
// release rex-worker on this host; a worker that cannot (here /bin/false,
// standing in for a host that refuses unprivileged user namespaces) keeps
// the broker making it, and the log says why.
func TestWorkerUsernsProbe(t *testing.T) {
	testutil.RequireRoot(t)
	if runtime.GOARCH != "amd64" {
		testutil.Skip(t, "the worker makes its own user namespace on amd64 only")
	}
	for _, c := range []struct {
		worker string
		want   bool
	}{
		{filepath.Join(testutil.Binaries(t), "rex-worker"), true},
		{"/bin/false", false},
	} {
		log := &testutil.SyncBuffer{}
		r, err := NewRunner(Config{WorkerPath: c.worker, Log: log, WorkerUserns: true})
		if err != nil {
			t.Fatal(err)
		}
		got := r.WorkerMakesUserns()
		r.Close()
		if got != c.want {
			t.Errorf("%s: WorkerMakesUserns %v, want %v; log: %s", c.worker, got, c.want, log)
		}
		if said := strings.Contains(log.String(), "workers get their user namespace from the broker: a worker could not make its own"); said == c.want {
			t.Errorf("%s: log %q", c.worker, log)
		}
	}
}

// A worker that cannot make its user namespace after all (the host changed
// since the probe; here a stand-in that exits as such a worker does) fails
// its run, and the Runner's next workers get their namespace from it.
func TestWorkerUsernsFallsBackAtRun(t *testing.T) {
	testutil.RequireRoot(t)
	if runtime.GOARCH != "amd64" {
		testutil.Skip(t, "the worker makes its own user namespace on amd64 only")
	}
	log := &testutil.SyncBuffer{}
	r, err := NewRunner(Config{WorkerPath: filepath.Join(testutil.Binaries(t), "rex-worker"), Log: log, WorkerUserns: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if !r.WorkerMakesUserns() {
		testutil.Skip(t, "the probe found no user namespace for workers here: "+log.String())
	}
	dir, err := os.MkdirTemp("", "rex-fake-worker-") // the worker's uid must reach it
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	fake := filepath.Join(dir, "rex-worker")
	if err := os.WriteFile(fake, []byte(fmt.Sprintf("#!/bin/sh\necho 'rex-worker: user namespace: refused' >&2\nexit %d\n", ipc.WorkerExitUserns)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	r.cfg.WorkerPath = fake
	ps, err := authz.LoadFiles(nil)
	if err != nil {
		t.Fatal(err)
	}
	res := r.Run(context.Background(), &Job{Principal: authz.Principal{Name: "u", UID: 1000}, Policies: ps,
		Script: []byte(`1`), ScriptName: "s", Args: []byte(`{}`)})
	if res.Status != ipc.StatusError {
		t.Fatalf("run on a worker without its namespace: %+v", res)
	}
	if r.WorkerMakesUserns() || !strings.Contains(log.String(), "workers get their user namespace from the broker from now on") {
		t.Errorf("still WorkerMakesUserns %v after exit %d; result %+v %+v; log: %s", r.WorkerMakesUserns(), ipc.WorkerExitUserns, res, res.Error, log)
	}
}
