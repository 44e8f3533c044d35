package broker

import (
	"os"
	"strings"
	"time"

	"github.com/rex-sh/rex/authz"
	"github.com/rex-sh/rex/broker/host"
	"github.com/rex-sh/rex/ipc"
)

// Bounds of fs.execute.
const (
	execDefaultTimeout = 10 * time.Second
	execMaxTimeout     = 60 * time.Second
	// execMaxOutput caps stdout and stderr each, so both fit one reply.
	execMaxOutput = 48 << 10
	// execDefaultUser is who a program runs as when the script names no
	// user: never root, never the broker.
	execDefaultUser = "nobody"
)

var actExecute = authz.FileAction("execute")

func init() {
	handlers[ipc.OpExecute] = (*session).opExecute
}

// opExecute runs a regular file as a child of the broker: open on its Dir,
// execute on the File with Rex's context (arguments and environment as tag
// entities, user, group). The program is the descriptor that was looked up
// and authorised (exec of /proc/self/fd/3 in the child, which is fexecve),
// it gets only the environment the script gave, stdin from /dev/null, its
// own process group (killed as a whole at the end or on timeout), no
// supplementary groups, and capped output. Without a user it runs as
// "nobody"; root only when the script asks for it and the policy allows
// execute with context.user.uid == 0.
func (s *session) opExecute(body []byte) (any, *os.File, error) {
	var req ipc.ExecuteReq
	if err := ipc.Unmarshal(body, &req); err != nil {
		return nil, nil, badRequest(err)
	}
	if len(req.Args) > 1024 || len(req.Env) > 1024 {
		return nil, nil, ipc.Errorf(ipc.CodeInvalid, "too many arguments or environment variables")
	}
	for k, v := range req.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.IndexByte(v, 0) >= 0 {
			return nil, nil, ipc.Errorf(ipc.CodeInvalid, "invalid environment variable %q", k)
		}
	}
	for _, a := range req.Args {
		if strings.IndexByte(a, 0) >= 0 {
			return nil, nil, ipc.Errorf(ipc.CodeInvalid, "argument with a NUL byte")
		}
	}
	uname := req.User
	if uname == "" {
		uname = execDefaultUser
	}
	uid, ok := host.UserID(uname)
	if !ok {
		return nil, nil, ipc.Errorf(ipc.CodeInvalid, "unknown user %q", uname)
	}
	gname := req.Group
	var gid uint32
	if gname == "" {
		gid = primaryGID(uid)
	} else if gid, ok = host.GroupID(gname); !ok {
		return nil, nil, ipc.Errorf(ipc.CodeInvalid, "unknown group %q", gname)
	}
	t, err := s.lookup(req.Path, false)
	if err != nil {
		return nil, nil, err
	}
	defer t.close()
	if err := s.authorizeParentOpen(t); err != nil {
		return nil, nil, err
	}
	ctx := map[string]any{
		"arguments":   argumentsEntity(req.Args),
		"environment": environmentEntity(req.Env),
		"user":        map[string]any{"username": host.UserName(uid), "uid": int64(uid)},
		"group":       map[string]any{"groupname": host.GroupName(gid), "gid": int64(gid)},
	}
	if err := s.checkFile(actExecute, t.resource(), ctx); err != nil {
		return nil, nil, err
	}
	if t.err != nil {
		return nil, nil, hostErr(t.err)
	}
	f, err := t.obj.OpenRead()
	if err != nil {
		return nil, nil, hostErr(err)
	}
	defer f.Close()
	timeout := execDefaultTimeout
	if req.TimeoutMs > 0 {
		timeout = min(time.Duration(req.TimeoutMs)*time.Millisecond, execMaxTimeout)
	}
	return s.runChild(f, t.path, req, uid, gid, timeout)
}

// primaryGID is the login group of uid from /etc/passwd, else nogroup.
func primaryGID(uid uint32) uint32 {
	if g, ok := host.PrimaryGID(uid); ok {
		return g
	}
	if g, ok := host.GroupID("nogroup"); ok {
		return g
	}
	return 65534
}

func (s *session) runChild(f *os.File, path string, req ipc.ExecuteReq, uid, gid uint32, timeout time.Duration) (any, *os.File, error) {
	if os.Geteuid() != 0 && uid != uint32(os.Geteuid()) && req.User != "" {
		return nil, nil, ipc.Errorf(ipc.CodeUnsupported, "this broker does not run as root and cannot run programs as %s", req.User)
	}
	env := make([]string, 0, len(req.Env))
	for k, v := range req.Env {
		env = append(env, k+"="+v)
	}
	res, err := host.Run(host.ExecSpec{Prog: f, Argv0: path, Args: req.Args, Env: env,
		UID: uid, GID: gid, Timeout: timeout, MaxOutput: execMaxOutput})
	if err != nil {
		return nil, nil, ipc.Errorf(ipc.CodeIO, "execute %s: %v", path, err)
	}
	return &ipc.ExecuteResp{ExitCode: res.ExitCode, Stdout: res.Stdout, Stderr: res.Stderr,
		Truncated: res.Truncated, TimedOut: res.TimedOut}, nil, nil
}

// argumentsEntity is Rex's view of a command line: "--k=v" and "-k v"
// are options (keys, with the value as the tag), a dash word followed by
// another dash word or by nothing is a flag, everything else positional.
func argumentsEntity(args []string) authz.ContextEntity {
	keys, flags, pos := []string{}, []string{}, []string{}
	tags := map[string]string{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--" || !strings.HasPrefix(a, "-") || a == "-":
			pos = append(pos, a)
		case strings.Contains(a, "="):
			k, v, _ := strings.Cut(a, "=")
			keys, tags[k] = append(keys, k), v
		case i+1 < len(args) && !strings.HasPrefix(args[i+1], "-"):
			keys, tags[a] = append(keys, a), args[i+1]
			i++
		default:
			flags = append(flags, a)
		}
	}
	return authz.ContextEntity{
		Type: "file_system::Arguments", ID: "args",
		Attrs: map[string]any{"keys": keys, "flags": flags, "positional_values": pos},
		Tags:  tags,
	}
}

func environmentEntity(env map[string]string) authz.ContextEntity {
	names := make([]string, 0, len(env))
	for k := range env {
		names = append(names, k)
	}
	return authz.ContextEntity{
		Type: "file_system::Environment", ID: "env",
		Attrs: map[string]any{"names": names}, Tags: env,
	}
}
