package broker

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
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

// A root Runner of one run (standalone rex-exec) lets its worker make its
// own user namespace without a probe, and checks that it did before the run
// gets it: the worker runs with ipc.WorkerUsernsArg, in a user namespace
// that is not the broker's, and the run succeeds.
func TestWorkerUsernsEach(t *testing.T) {
	testutil.RequireRoot(t)
	if runtime.GOARCH != "amd64" || !unprivilegedUserns("/proc/sys") {
		testutil.Skip(t, "the worker makes its own user namespace on amd64 hosts that allow it only")
	}
	r, err := NewRunner(Config{WorkerPath: filepath.Join(testutil.Binaries(t), "rex-worker"), WorkerUsernsEach: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Wait()
	defer r.Close()
	if !r.WorkerMakesUserns() {
		t.Fatal("WorkerUsernsEach on a host that allows it: the broker makes the namespace")
	}
	r.Prestart()
	p, _, err := r.take()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(p.wp.args, ipc.WorkerUsernsArg) {
		t.Errorf("worker started as %q", p.wp.args)
	}
	own, _ := os.Readlink("/proc/self/ns/user")
	theirs, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/user", p.wp.pid()))
	if err != nil || theirs == own {
		t.Errorf("taken worker's user namespace %q (%v), the broker's %q", theirs, err, own)
	}
	p.release(r)
	res := r.Run(context.Background(), &Job{Principal: authz.Principal{Name: "u", UID: 1000}, Policies: loadPolicy(t, ""),
		Script: []byte(`1 + 1`), ScriptName: "s", Args: []byte(`{}`)})
	if res.Status != ipc.StatusSuccess || string(res.Output) != "2" {
		t.Fatalf("run: %+v %+v", res, res.Error)
	}
}

// A worker that cannot make its user namespace where the sysctls said it
// could (here a stand-in that exits as such a worker does, and otherwise
// runs the real worker) is replaced before the run gets it by one the
// broker makes the namespace for: the run succeeds, and so do the next.
func TestWorkerUsernsEachFallsBack(t *testing.T) {
	testutil.RequireRoot(t)
	if runtime.GOARCH != "amd64" || !unprivilegedUserns("/proc/sys") {
		testutil.Skip(t, "the worker makes its own user namespace on amd64 hosts that allow it only")
	}
	dir, err := os.MkdirTemp("", "rex-fake-worker-") // the worker's uid must reach it
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	fake := filepath.Join(dir, "rex-worker")
	script := fmt.Sprintf("#!/bin/sh\nfor a; do if [ \"$a\" = %s ]; then echo 'rex-worker: user namespace: refused' >&2; exit %d; fi; done\nexec %s \"$@\"\n",
		ipc.WorkerUsernsArg, ipc.WorkerExitUserns, filepath.Join(testutil.Binaries(t), "rex-worker"))
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	log := &testutil.SyncBuffer{}
	r, err := NewRunner(Config{WorkerPath: fake, Log: log, WorkerUsernsEach: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Wait()
	defer r.Close()
	r.Prestart()
	for i := 0; i < 2; i++ {
		res := r.Run(context.Background(), &Job{Principal: authz.Principal{Name: "u", UID: 1000}, Policies: loadPolicy(t, ""),
			Script: []byte(`1 + 1`), ScriptName: "s", Args: []byte(`{}`)})
		if res.Status != ipc.StatusSuccess || string(res.Output) != "2" {
			t.Fatalf("run %d: %+v %+v; log: %s", i, res, res.Error, log)
		}
	}
	if r.WorkerMakesUserns() || strings.Count(log.String(), "workers get their user namespace from the broker: a worker could not make its own") != 1 {
		t.Errorf("WorkerMakesUserns %v after a worker exited %d; log: %s", r.WorkerMakesUserns(), ipc.WorkerExitUserns, log)
	}
}

// Config.Prestart has NewRunner start a worker before it returns (before
// the host file system's set-up, which the worker's start overlaps), and
// the first run takes that worker rather than starting another.
func TestConfigPrestart(t *testing.T) {
	testutil.RequireRoot(t)
	r, err := NewRunner(Config{WorkerPath: filepath.Join(testutil.Binaries(t), "rex-worker"), WorkerUsernsEach: true, Prestart: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Wait()
	defer r.Close()
	ch := r.ahead.Load()
	if ch == nil {
		t.Fatal("NewRunner returned without a worker started ahead")
	}
	ahead := <-*ch
	if ahead.err != nil {
		t.Fatal(ahead.err)
	}
	*ch <- ahead
	p, _, err := r.take()
	if err != nil {
		t.Fatal(err)
	}
	defer p.release(r)
	if p != ahead.p {
		t.Errorf("the run took worker %d, not the one started ahead (%d)", p.wp.pid(), ahead.p.wp.pid())
	}
	if r.fs == nil || r.mandatory == nil || r.audit == nil {
		t.Errorf("NewRunner returned before its set-up: fs %v, mandatory %v, audit %v", r.fs, r.mandatory, r.audit)
	}
}

// The sysctls that take unprivileged user namespaces away, each alone.
func TestUnprivilegedUsernsSysctls(t *testing.T) {
	for _, c := range []struct {
		files map[string]string
		want  bool
	}{
		{map[string]string{}, true},
		{map[string]string{"user/max_user_namespaces": "96364\n", "kernel/unprivileged_userns_clone": "1\n",
			"kernel/apparmor_restrict_unprivileged_userns": "0\n"}, true},
		{map[string]string{"user/max_user_namespaces": "0\n"}, false},
		{map[string]string{"kernel/unprivileged_userns_clone": "0\n"}, false},
		{map[string]string{"kernel/apparmor_restrict_unprivileged_userns": "1\n"}, false},
	} {
		dir := t.TempDir()
		for name, v := range c.files {
			p := filepath.Join(dir, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if got := unprivilegedUserns(dir); got != c.want {
			t.Errorf("%v: %v, want %v", c.files, got, c.want)
		}
	}
}
