package host

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// ExecSpec says how to run an authorised program.
type ExecSpec struct {
	Prog      *os.File // the opened, authorised regular file
	Argv0     string   // its path, as the program's argv[0]
	Args, Env []string
	UID, GID  uint32 // applied when the broker is root
	Timeout   time.Duration
	MaxOutput int // cap of stdout and of stderr, each
}

// ExecResult is what a finished program left.
type ExecResult struct {
	ExitCode       int
	Stdout, Stderr []byte
	Truncated      bool // an output hit MaxOutput
	TimedOut       bool
}

// Run executes spec.Prog as a child of the broker: exec of /proc/self/fd/3
// in the child is fexecve of the authorised descriptor, so no path is
// resolved again. The child gets only spec.Env, stdin from /dev/null, "/"
// as its directory and its own process group, which is killed as a whole
// when the program ends or its time is up; output beyond MaxOutput is
// dropped so that a chatty program never blocks on a full pipe.
func Run(spec ExecSpec) (*ExecResult, error) {
	stdout, stderr := &cappedBuffer{max: spec.MaxOutput}, &cappedBuffer{max: spec.MaxOutput}
	cmd := &exec.Cmd{
		Path:       "/proc/self/fd/3",
		Args:       append([]string{spec.Argv0}, spec.Args...),
		Env:        spec.Env,
		Dir:        "/",
		ExtraFiles: []*os.File{spec.Prog},
		Stdout:     stdout,
		Stderr:     stderr,
		WaitDelay:  time.Second,
		SysProcAttr: &syscall.SysProcAttr{
			Setpgid:   true,
			Pdeathsig: syscall.SIGKILL,
		},
	}
	if os.Geteuid() == 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: spec.UID, Gid: spec.GID, Groups: []uint32{}}
	}
	if err := cmd.Start(); err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, err
	}
	pgid := cmd.Process.Pid
	ctx, cancel := context.WithTimeout(context.Background(), spec.Timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	res := &ExecResult{}
	var werr error
	select {
	case werr = <-done:
	case <-ctx.Done():
		res.TimedOut = true
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		werr = <-done
	}
	// Whatever the program left behind in its group goes with it.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	res.ExitCode = cmd.ProcessState.ExitCode()
	var ee *exec.ExitError
	if werr != nil && !errors.As(werr, &ee) && !errors.Is(werr, exec.ErrWaitDelay) {
		return nil, werr
	}
	res.Stdout, res.Stderr = stdout.Bytes(), stderr.Bytes()
	res.Truncated = stdout.cut || stderr.cut
	return res, nil
}

// cappedBuffer keeps the first max bytes written and drops the rest.
type cappedBuffer struct {
	bytes.Buffer
	max int
	cut bool
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	if room := c.max - c.Len(); room < len(p) {
		c.cut = true
		c.Buffer.Write(p[:max(room, 0)])
		return len(p), nil
	}
	return c.Buffer.Write(p)
}
