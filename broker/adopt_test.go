package broker

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/rex-sh/rex/authz"
	"github.com/rex-sh/rex/internal/testutil"
	"github.com/rex-sh/rex/ipc"
)

// A worker handed to the Runner from outside (Adopted) that is not what
// startWorker makes, here sleep(1) in a user namespace of its own (so that
// it passes the first check), is killed and reaped, and the run gets a
// worker the Runner starts: it succeeds, and the log says why.
func TestAdoptedWorkerChecked(t *testing.T) {
	testutil.RequireRoot(t)
	if runtime.GOARCH != "amd64" || !unprivilegedUserns("/proc/sys") {
		testutil.Skip(t, "workers make their own user namespace on amd64 hosts that allow it only")
	}
	brokerEnd, workerEnd, err := ipc.SocketPair()
	if err != nil {
		t.Fatal(err)
	}
	inR, inW, _ := os.Pipe()
	outR, outW, _ := os.Pipe()
	errR, errW, _ := os.Pipe()
	cmd := exec.Command("unshare", "--user", "--map-root-user", "sleep", "30")
	cmd.Stdin, cmd.Stdout, cmd.Stderr, cmd.ExtraFiles = inR, outW, errW, []*os.File{workerEnd}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	closeFiles(inR, outW, errW, workerEnd)
	sock, err := unix.Dup(int(brokerEnd.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	brokerEnd.Close()
	pid := cmd.Process.Pid
	log := &testutil.SyncBuffer{}
	r, err := NewRunner(Config{WorkerPath: filepath.Join(testutil.Binaries(t), "rex-worker"), Log: log,
		WorkerUsernsEach: true, Prestart: true, Adopt: &Adopted{PID: pid, Sock: sock, Stdin: inW, Stdout: outR, Stderr: errR}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Wait()
	defer r.Close()
	res := r.Run(context.Background(), &Job{Principal: authz.Principal{Name: "u", UID: 1000}, Policies: loadPolicy(t, ""),
		Script: []byte(`1 + 1`), ScriptName: "s", Args: []byte(`{}`)})
	if res.Status != ipc.StatusSuccess || string(res.Output) != "2" {
		t.Fatalf("run: %+v %+v; log: %s", res, res.Error, log)
	}
	if !strings.Contains(log.String(), "starting another worker: the one started at entry runs") {
		t.Errorf("log: %s", log)
	}
	if isChild(pid) {
		t.Errorf("the refused worker (pid %d) was not reaped", pid)
	}
}

// Close kills an adopted worker that no run took.
func TestAdoptedWorkerClosed(t *testing.T) {
	testutil.RequireRoot(t)
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sock, _, err := ipc.SocketPair()
	if err != nil {
		t.Fatal(err)
	}
	fd, _ := unix.Dup(int(sock.Fd()))
	sock.Close()
	_, inW, _ := os.Pipe()
	outR, _, _ := os.Pipe()
	errR, _, _ := os.Pipe()
	r, err := NewRunner(Config{WorkerPath: filepath.Join(testutil.Binaries(t), "rex-worker"),
		Adopt: &Adopted{PID: cmd.Process.Pid, Sock: fd, Stdin: inW, Stdout: outR, Stderr: errR}})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	r.Wait()
	if isChild(cmd.Process.Pid) {
		t.Errorf("Close left the adopted worker (pid %d)", cmd.Process.Pid)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil {
		t.Errorf("Close left the adopted worker's socket open")
	}
}

// A Runner of one run (Config.OneRun) has its worker exit as soon as its
// result is written, and takes the run's peak memory from the reaped
// worker's rusage: the run succeeds and its audit record has the figure.
func TestOneRunPeakMemory(t *testing.T) {
	testutil.RequireRoot(t)
	audit := &testutil.SyncBuffer{}
	r, err := NewRunner(Config{WorkerPath: filepath.Join(testutil.Binaries(t), "rex-worker"), Audit: audit, OneRun: true})
	if err != nil {
		t.Fatal(err)
	}
	res := r.Run(context.Background(), &Job{Principal: authz.Principal{Name: "u", UID: 1000}, Policies: loadPolicy(t, ""),
		Script: []byte(`1 + 1`), ScriptName: "s", Args: []byte(`{}`)})
	r.Close()
	r.Wait()
	if res.Status != ipc.StatusSuccess || string(res.Output) != "2" {
		t.Fatalf("run: %+v %+v", res, res.Error)
	}
	var end AuditRecord
	for _, line := range strings.Split(strings.TrimSpace(audit.String()), "\n") {
		var rec AuditRecord
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Event == "run_end" {
			end = rec
		}
	}
	if end.PeakMemory < 1<<20 {
		t.Errorf("run_end peak memory %d bytes: %s", end.PeakMemory, audit)
	}
}
