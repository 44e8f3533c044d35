package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/rex-sh/rex/authz"
	"github.com/rex-sh/rex/broker/host"
	"github.com/rex-sh/rex/ipc"
)

// handshakeTimeout bounds how long a client may take to send its hello and
// its run request (slowloris).
const handshakeTimeout = 10 * time.Second

// Daemon serves runs on a Unix socket. The principal of a connection is its
// peer from SO_PEERCRED at connect time; nothing a client sends can change
// it.
type Daemon struct {
	Runner   *Runner
	Policies atomic.Pointer[authz.PolicySet]
	Log      io.Writer
	// MaxRuns and MaxRunsPerUser bound concurrent runs (0: unbounded); a
	// run over either is refused at once with CodeBusy, never queued.
	MaxRuns, MaxRunsPerUser int
	// AllowGroups, when not empty, admits only peers with one of these
	// gids as primary or supplementary group; everyone else is refused
	// before the broker reads a byte from them.
	AllowGroups []uint32

	mu       sync.Mutex
	running  int
	perUser  map[uint32]int
	ln       *net.UnixListener
	closing  bool
	conns    sync.WaitGroup
	cancelMu sync.Mutex
	cancels  map[*net.UnixConn]context.CancelCauseFunc
}

// Listen creates the socket at path with the given mode and group (-1 keeps
// the broker's group), replacing a stale socket.
func Listen(path string, mode os.FileMode, gid int) (*net.UnixListener, error) {
	if err := os.MkdirAll(dirOf(path), 0o755); err != nil {
		return nil, err
	}
	if st, err := os.Lstat(path); err == nil {
		if st.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket", path)
		}
		_ = os.Remove(path)
	}
	old := unix.Umask(0o177)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	unix.Umask(old)
	if err != nil {
		return nil, err
	}
	if gid >= 0 {
		if err := os.Lchown(path, -1, gid); err != nil {
			ln.Close()
			return nil, err
		}
	}
	if err := os.Chmod(path, mode); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

func dirOf(p string) string {
	for i := len(p) - 1; i > 0; i-- {
		if p[i] == '/' {
			return p[:i]
		}
	}
	return "/"
}

// Serve accepts connections until Shutdown.
func (d *Daemon) Serve(ln *net.UnixListener) error {
	d.mu.Lock()
	d.ln = ln
	d.cancels = map[*net.UnixConn]context.CancelCauseFunc{}
	d.mu.Unlock()
	for {
		c, err := ln.AcceptUnix()
		if err != nil {
			d.mu.Lock()
			closing := d.closing
			d.mu.Unlock()
			if closing {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			d.logf("accept: %v", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		d.conns.Add(1)
		go func() {
			defer d.conns.Done()
			d.serveConn(c)
		}()
	}
}

// Shutdown stops accepting, lets running scripts finish until ctx ends,
// then cancels them and waits for their cleanup.
func (d *Daemon) Shutdown(ctx context.Context) {
	d.mu.Lock()
	d.closing = true
	if d.ln != nil {
		d.ln.Close()
	}
	d.mu.Unlock()
	done := make(chan struct{})
	go func() { d.conns.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	d.cancelMu.Lock()
	for _, cancel := range d.cancels {
		cancel(ErrShutdown)
	}
	d.cancelMu.Unlock()
	<-done
}

func (d *Daemon) logf(format string, args ...any) {
	if d.Log != nil {
		fmt.Fprintf(d.Log, "rex-broker: "+format+"\n", args...)
	}
}

func (d *Daemon) serveConn(c *net.UnixConn) {
	defer c.Close()
	uid, pid, gids, err := peerCred(c)
	if err != nil {
		d.logf("peer credentials: %v", err)
		return
	}
	if !d.groupAllowed(gids) {
		p := PrincipalFor(uid, gids[:1])
		d.Runner.audit.refused(p.Name, uid, pid, "not in an allowed group (--allow-group)")
		d.refuse(c, ipc.CodeDenied, "uid %d (pid %d) is not in a group allowed to use this broker", uid, pid)
		// Let the client finish sending its hello, unread, so that it
		// reads the refusal instead of a broken pipe; bounded in time and
		// size.
		_ = c.CloseWrite()
		_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		_, _ = io.Copy(io.Discard, io.LimitReader(c, 64<<10))
		return
	}
	p := PrincipalFor(uid, gids)
	_ = c.SetDeadline(time.Now().Add(handshakeTimeout))
	var hello ipc.Hello
	if err := ipc.ReadFrameAs(c, ipc.MsgHello, &hello); err != nil {
		d.refuse(c, ipc.CodeProtocol, "expected a hello frame: %v", err)
		return
	}
	if hello.Version != ipc.Version {
		d.refuse(c, ipc.CodeVersion, "protocol version %d not supported; this broker speaks %d", hello.Version, ipc.Version)
		return
	}
	if err := ipc.WriteFrame(c, ipc.MsgHelloAck, &ipc.HelloAck{Version: ipc.Version, Broker: "rex-broker", Principal: p.Name}); err != nil {
		return
	}
	var req ipc.RunRequest
	if err := ipc.ReadFrameAs(c, ipc.MsgRun, &req); err != nil {
		d.refuse(c, ipc.CodeProtocol, "expected a run frame: %v", err)
		return
	}
	_ = c.SetDeadline(time.Time{})
	d.mu.Lock()
	closing := d.closing
	d.mu.Unlock()
	if closing {
		d.refuse(c, ipc.CodeBusy, "broker is shutting down")
		return
	}
	if why := d.admit(p.UID); why != "" {
		d.refuse(c, ipc.CodeBusy, "%s; try again later", why)
		return
	}
	defer d.release(p.UID)

	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	d.cancelMu.Lock()
	d.cancels[c] = cancel
	d.cancelMu.Unlock()
	defer func() {
		d.cancelMu.Lock()
		delete(d.cancels, c)
		d.cancelMu.Unlock()
	}()
	// A client that goes away cancels its run: the only thing it may send
	// after the run request is EOF.
	go func() {
		var b [1]byte
		_, _ = c.Read(b[:])
		cancel(nil)
	}()

	res := d.Runner.Run(ctx, &Job{
		Principal: p, Policies: d.Policies.Load(), Script: req.Script, ScriptName: req.ScriptName,
		Args: req.Args, Timeout: time.Duration(req.TimeoutMs) * time.Millisecond, PeerPID: pid,
	})
	_ = c.SetWriteDeadline(time.Now().Add(handshakeTimeout))
	_ = ipc.WriteFrame(c, ipc.MsgResult, res)
}

// admit counts a run in, or says why it cannot start.
func (d *Daemon) admit(uid uint32) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.perUser == nil {
		d.perUser = map[uint32]int{}
	}
	if d.MaxRuns > 0 && d.running >= d.MaxRuns {
		return fmt.Sprintf("broker at capacity (%d concurrent runs)", d.MaxRuns)
	}
	if d.MaxRunsPerUser > 0 && d.perUser[uid] >= d.MaxRunsPerUser {
		return fmt.Sprintf("too many concurrent runs for this user (limit %d)", d.MaxRunsPerUser)
	}
	d.running++
	d.perUser[uid]++
	return ""
}

func (d *Daemon) release(uid uint32) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.running--
	if d.perUser[uid]--; d.perUser[uid] <= 0 {
		delete(d.perUser, uid)
	}
}

func (d *Daemon) refuse(c *net.UnixConn, code ipc.Code, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	d.logf("refused connection: %s", msg)
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	_ = ipc.WriteFrame(c, ipc.MsgError, &ipc.ErrorMsg{Code: code, Message: msg})
}

func (d *Daemon) groupAllowed(gids []uint32) bool {
	if len(d.AllowGroups) == 0 {
		return true
	}
	for _, g := range gids {
		for _, a := range d.AllowGroups {
			if g == a {
				return true
			}
		}
	}
	return false
}

// PeerPrincipal reads the peer's identity from the kernel: uid and pid from
// SO_PEERCRED, supplementary groups from SO_PEERGROUPS (both fixed at
// connect time), names from the host's user and group databases.
func PeerPrincipal(c *net.UnixConn) (authz.Principal, int, error) {
	uid, pid, gids, err := peerCred(c)
	if err != nil {
		return authz.Principal{}, 0, err
	}
	return PrincipalFor(uid, gids), pid, nil
}

// peerCred returns the peer's uid, pid and groups, the primary group
// first.
func peerCred(c *net.UnixConn) (uint32, int, []uint32, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, 0, nil, err
	}
	var cred *unix.Ucred
	var gids []uint32
	var serr error
	err = raw.Control(func(fd uintptr) {
		cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if serr == nil {
			gids, serr = peerGroups(int(fd))
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return 0, 0, nil, err
	}
	return cred.Uid, int(cred.Pid), append([]uint32{cred.Gid}, gids...), nil
}

func peerGroups(fd int) ([]uint32, error) {
	buf := make([]uint32, 64)
	for {
		n := uint32(len(buf) * 4)
		_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_PEERGROUPS,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&n)), 0)
		if errno == unix.ERANGE && len(buf) < 65536 {
			buf = make([]uint32, int(n/4)+1)
			continue
		}
		if errno != 0 {
			return nil, os.NewSyscallError("getsockopt SO_PEERGROUPS", errno)
		}
		return buf[:n/4], nil
	}
}

// PrincipalFor names uid and its groups as Cedar sees them: the login
// name (the uid as a string when it has none) and group names (likewise).
func PrincipalFor(uid uint32, gids []uint32) authz.Principal {
	// /etc/passwd and /etc/group are parsed again only when they changed
	// (host.PrincipalUserName), not at every run.
	p := authz.Principal{Name: host.PrincipalUserName(uid), UID: uid}
	seen := map[uint32]bool{}
	for _, g := range gids {
		if seen[g] {
			continue
		}
		seen[g] = true
		p.Groups = append(p.Groups, host.PrincipalGroupName(g))
	}
	return p
}
