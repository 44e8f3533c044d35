package broker

import (
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/rex-sh/rex/internal/testutil"
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
