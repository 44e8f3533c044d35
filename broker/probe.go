package broker

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// LayerStatus is what a probe found.
type LayerStatus string

const (
	LayerOK       LayerStatus = "ok"
	LayerMissing  LayerStatus = "missing"
	LayerDegraded LayerStatus = "degraded"
)

// Layer is one sandbox layer the broker relies on. The same table drives
// `rex-broker doctor` and the daemon's start-up check, so what doctor
// reports is exactly what the daemon enforces.
type Layer struct {
	Name string
	// Required layers make the daemon refuse runs when missing, unless the
	// operator names them in --allow-degraded.
	Required bool
	// Fix tells the operator what to do when the layer is not ok.
	Fix   string
	probe func() (LayerStatus, string)
}

// LayerResult is one probed layer.
type LayerResult struct {
	Layer
	Status LayerStatus
	Detail string
}

// ProbeMissingEnv is a test hook: a comma-separated list of layer names
// that the probes report as missing without probing, so that tests can show
// each missing layer is refused by name on a host that has them all. It is
// read from the daemon's own environment, which only the operator sets.
const ProbeMissingEnv = "REX_TEST_PROBE_MISSING"

// Layers lists every layer in doctor's order.
func Layers() []Layer {
	ns := func(name string, flag uintptr) Layer {
		return Layer{Name: name + "-namespace", Required: true,
			Fix:   fmt.Sprintf("enable CONFIG_%s_NS in the kernel; check that no seccomp or LSM policy of the service blocks unshare(%s)", strings.ToUpper(name), nsFlagName(flag)),
			probe: func() (LayerStatus, string) { return probeNamespace(name, flag) }}
	}
	return []Layer{
		{Name: "user-namespace", Required: true,
			Fix:   "enable user namespaces: sysctl user.max_user_namespaces=15000 (and kernel.unprivileged_userns_clone=1 where it exists); CONFIG_USER_NS=y",
			probe: func() (LayerStatus, string) { return probeNamespace("user", unix.CLONE_NEWUSER) }},
		ns("pid", unix.CLONE_NEWPID),
		ns("net", unix.CLONE_NEWNET),
		ns("mount", unix.CLONE_NEWNS),
		ns("ipc", unix.CLONE_NEWIPC),
		ns("uts", unix.CLONE_NEWUTS),
		ns("cgroup", unix.CLONE_NEWCGROUP),
		{Name: "seccomp", Required: true, Fix: "enable CONFIG_SECCOMP_FILTER in the kernel", probe: probeSeccomp},
		{Name: "openat2", Required: true, Fix: "run a Linux kernel 5.6 or later (openat2 with RESOLVE_* flags)", probe: probeOpenat2},
		{Name: "pidfd", Required: true, Fix: "run a Linux kernel 5.3 or later (pidfd_open)", probe: probePidfd},
		{Name: "landlock", Required: true, Fix: "enable CONFIG_SECURITY_LANDLOCK and add landlock to the lsm= boot parameter (kernel 5.13 or later)", probe: probeLandlock},
		{Name: "cgroup", Required: true, Fix: "mount cgroup v2 with the memory and pids controllers enabled, or cgroup v1 memory and pids hierarchies under /sys/fs/cgroup, writable by root", probe: probeCgroup},
		{Name: "so-peercred", Required: true, Fix: "the kernel must support SO_PEERCRED and SO_PEERGROUPS on Unix sockets (4.13 or later)", probe: probePeercred},
	}
}

func nsFlagName(flag uintptr) string {
	switch flag {
	case unix.CLONE_NEWPID:
		return "CLONE_NEWPID"
	case unix.CLONE_NEWNET:
		return "CLONE_NEWNET"
	case unix.CLONE_NEWNS:
		return "CLONE_NEWNS"
	case unix.CLONE_NEWIPC:
		return "CLONE_NEWIPC"
	case unix.CLONE_NEWUTS:
		return "CLONE_NEWUTS"
	case unix.CLONE_NEWCGROUP:
		return "CLONE_NEWCGROUP"
	}
	return fmt.Sprintf("%#x", flag)
}

// Probe runs every probe. Layers named in the ProbeMissingEnv test hook
// report missing.
func Probe() []LayerResult {
	forced := map[string]bool{}
	for _, n := range strings.Split(os.Getenv(ProbeMissingEnv), ",") {
		if n = strings.TrimSpace(n); n != "" {
			forced[n] = true
		}
	}
	var out []LayerResult
	for _, l := range Layers() {
		r := LayerResult{Layer: l}
		if forced[l.Name] {
			r.Status, r.Detail = LayerMissing, "reported missing by "+ProbeMissingEnv
		} else {
			r.Status, r.Detail = l.probe()
		}
		out = append(out, r)
	}
	return out
}

// Gaps returns the required layers that are missing and not allowed by
// allowDegraded, and those that are missing or degraded but allowed. An
// unknown name in allowDegraded is an error so a typo cannot go unnoticed.
func Gaps(results []LayerResult, allowDegraded []string) (refused, accepted []string, err error) {
	known := map[string]bool{}
	for _, r := range results {
		known[r.Name] = true
	}
	allowed := map[string]bool{}
	for _, n := range allowDegraded {
		if !known[n] {
			return nil, nil, fmt.Errorf("--allow-degraded: unknown layer %q (rex-broker doctor lists them)", n)
		}
		allowed[n] = true
	}
	for _, r := range results {
		if r.Status == LayerOK || !r.Required {
			continue
		}
		if allowed[r.Name] {
			accepted = append(accepted, r.Name)
		} else if r.Status == LayerMissing {
			refused = append(refused, r.Name)
		}
	}
	return refused, accepted, nil
}

// trueBinary is a program a probe child can exec: the probe is whether the
// clone with the namespace flags succeeds, not what the child runs.
func trueBinary() (string, error) {
	for _, p := range []string{"/bin/true", "/usr/bin/true"} {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, nil
		}
	}
	if self, err := os.Executable(); err == nil {
		return self, nil
	}
	return "", errors.New("no program to exec in a probe child")
}

// probeNamespace creates a child in a new namespace of the given kind, the
// way the worker is created: a user namespace is created as an
// unprivileged uid mapped to root inside, like the worker's.
func probeNamespace(kind string, flag uintptr) (LayerStatus, string) {
	bin, err := trueBinary()
	if err != nil {
		return LayerMissing, err.Error()
	}
	attr := &syscall.SysProcAttr{Cloneflags: flag, Pdeathsig: syscall.SIGKILL}
	if flag == unix.CLONE_NEWUSER {
		id := os.Getuid()
		if id == 0 {
			id = 65534
		}
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: id, Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: id, Size: 1}}
		attr.GidMappingsEnableSetgroups = false
		if os.Getuid() == 0 {
			attr.Credential = &syscall.Credential{Uid: 0, Gid: 0}
		}
	}
	cmd := &exec.Cmd{Path: bin, Args: []string{"true"}, Dir: "/", Env: []string{}, SysProcAttr: attr}
	if err := cmd.Run(); err != nil {
		return LayerMissing, fmt.Sprintf("cannot create a %s namespace: %v", kind, err)
	}
	return LayerOK, ""
}

// probeSeccomp loads an allow-all filter into a throwaway thread, which
// the runtime discards with its filter (and no_new_privs) instead of
// reusing it for other goroutines.
func probeSeccomp() (LayerStatus, string) {
	type res struct {
		st     LayerStatus
		detail string
	}
	ch := make(chan res, 1)
	onThrowawayThread(func() {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			ch <- res{LayerMissing, fmt.Sprintf("prctl(PR_SET_NO_NEW_PRIVS): %v", err)}
			return
		}
		filter := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW}}
		prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
		_, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&prog)))
		runtime.KeepAlive(filter)
		if errno != 0 {
			ch <- res{LayerMissing, fmt.Sprintf("seccomp(SECCOMP_SET_MODE_FILTER): %v", errno)}
			return
		}
		ch <- res{LayerOK, ""}
	})
	r := <-ch
	return r.st, r.detail
}

// onThrowawayThread runs f on an OS thread that ends when f returns: the
// goroutine exits still locked to it, so the runtime terminates the thread.
// The main thread is the exception (the runtime parks it instead), so on
// the main thread f runs on another thread while this one stays locked.
func onThrowawayThread(f func()) {
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() == unix.Getpid() {
			onThrowawayThread(f)
			runtime.UnlockOSThread()
			close(done)
			return
		}
		defer close(done)
		f()
	}()
	<-done
}

func probeOpenat2() (LayerStatus, string) {
	root, err := unix.Open("/", unix.O_PATH|unix.O_CLOEXEC|unix.O_DIRECTORY, 0)
	if err != nil {
		return LayerMissing, fmt.Sprintf("open /: %v", err)
	}
	defer unix.Close(root)
	// The lookup flags the host package relies on, on a lookup they allow.
	fd, err := unix.Openat2(root, ".", &unix.OpenHow{
		Flags: unix.O_PATH | unix.O_CLOEXEC | unix.O_DIRECTORY, Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_BENEATH,
	})
	if err != nil {
		return LayerMissing, fmt.Sprintf("openat2: %v", err)
	}
	unix.Close(fd)
	return LayerOK, ""
}

func probePidfd() (LayerStatus, string) {
	fd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		return LayerMissing, fmt.Sprintf("pidfd_open: %v", err)
	}
	defer unix.Close(fd)
	if err := unix.PidfdSendSignal(fd, 0, nil, 0); err != nil {
		return LayerDegraded, fmt.Sprintf("pidfd_send_signal: %v", err)
	}
	return LayerOK, ""
}

// landlockMinABI is the Landlock ABI the worker's deny-all ruleset needs
// to cover truncation as well as the file-access rights of ABI 1.
const landlockMinABI = 3

func probeLandlock() (LayerStatus, string) {
	abi, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION)
	if errno != 0 {
		return LayerMissing, fmt.Sprintf("landlock_create_ruleset: %v", errno)
	}
	if abi < landlockMinABI {
		return LayerDegraded, fmt.Sprintf("ABI %d (the worker's ruleset is complete from ABI %d)", abi, landlockMinABI)
	}
	return LayerOK, fmt.Sprintf("ABI %d", abi)
}

func probeCgroup() (LayerStatus, string) {
	if os.Geteuid() != 0 {
		return LayerMissing, "only a root broker creates cgroups"
	}
	m := detectCgroups()
	if m == cgroupNone {
		return LayerMissing, "no writable cgroup v2 with memory+pids, nor v1 memory and pids hierarchies, under " + cgroupRoot
	}
	// Create and remove a real group, the way a run does.
	cg, err := newCgroup(m, fmt.Sprintf("probe-%d", os.Getpid()), 64<<20, 16)
	if err != nil {
		return LayerMissing, fmt.Sprintf("cgroup %s: %v", m, err)
	}
	cg.remove()
	return LayerOK, m.String() + " memory+pids"
}

func probePeercred() (LayerStatus, string) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return LayerMissing, fmt.Sprintf("socketpair: %v", err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	cred, err := unix.GetsockoptUcred(fds[0], unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil {
		return LayerMissing, fmt.Sprintf("SO_PEERCRED: %v", err)
	}
	if int(cred.Pid) != os.Getpid() || int(cred.Uid) != os.Getuid() {
		return LayerMissing, fmt.Sprintf("SO_PEERCRED reported pid %d uid %d, not this process", cred.Pid, cred.Uid)
	}
	if _, err := peerGroups(fds[0]); err != nil {
		return LayerMissing, err.Error()
	}
	return LayerOK, ""
}
