package broker

import (
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/rex-sh/rex/authz"
	"github.com/rex-sh/rex/ipc"
)

// MandatoryDenyID is the policy id that denials by the mandatory deny list
// carry in results and audit records.
const MandatoryDenyID = "rex-mandatory-deny"

// The mandatory deny list (SECURITY-TESTS F12) is applied in the broker
// before Cedar, so that no policy, however broad, lets a script take over
// the host through the places that run code or hold credentials later:
// rex's own policies, socket and worker binary, sudo, cron, systemd units,
// shell start-up files, git hooks and SSH keys. Two classes:
//
//   - secret: nothing but stat (memory and environment of processes, the
//     broker's own /proc entries, the broker's socket directory);
//   - protected: may be read (a policy may grant that), never written,
//     created, deleted, moved, chmod'ed, chown'ed, given xattrs or executed.
//
// Patterns are canonical paths where "*" matches exactly one component;
// a pattern covers the object and everything below it. A delete or move
// of a directory that holds a protected object is refused too.
var (
	defaultSecret = []string{
		"/proc/*/mem", "/proc/*/environ", "/proc/*/root", "/proc/*/cwd", "/proc/*/fd",
		"/proc/*/map_files", "/proc/self", "/proc/thread-self", "/proc/kcore",
		"/dev/mem", "/dev/kmem", "/dev/port", "/run/rex",
	}
	defaultProtected = []string{
		"/etc/rex", "/etc/sudoers", "/etc/sudoers.d", "/etc/crontab", "/etc/cron.d", "/etc/cron.hourly",
		"/etc/cron.daily", "/etc/cron.weekly", "/etc/cron.monthly", "/var/spool/cron", "/etc/anacrontab",
		"/etc/systemd", "/lib/systemd", "/usr/lib/systemd", "/run/systemd/system", "/etc/init.d",
		"/etc/ld.so.preload", "/etc/pam.d", "/etc/profile", "/etc/profile.d", "/etc/bash.bashrc",
		"/root/.ssh", "/home/*/.ssh",
	}
	// Shell and tool start-up files of any home directory.
	homeDotfiles = []string{
		".bashrc", ".bash_profile", ".bash_login", ".bash_logout", ".profile", ".zshrc",
		".zprofile", ".zshenv", ".zlogin", ".cshrc", ".tcshrc", ".config/autostart", ".config/systemd",
	}
	// Names protected wherever they are.
	protectedAnywhere = []string{"authorized_keys", "authorized_keys2"}
)

// readOnlyActions are what a protected object still allows, if Cedar does.
var readOnlyActions = map[string]bool{"open": true, "read": true, "stat": true, "redacted_read": true}

// mandatoryList is the deny list of one runner.
type mandatoryList struct {
	secret, protected []string
	// The same patterns split into components once.
	secretC, protectedC [][]string
}

// newMandatoryList adds the operator's extra protected paths (the policy
// directory, the socket directory, the worker binary) to the defaults.
func newMandatoryList(extraSecret, extraProtected []string) *mandatoryList {
	m := &mandatoryList{
		secret:    append([]string(nil), defaultSecret...),
		protected: append([]string(nil), defaultProtected...),
	}
	for _, h := range []string{"/root", "/home/*"} {
		for _, d := range homeDotfiles {
			m.protected = append(m.protected, h+"/"+d)
		}
	}
	m.protected = appendCanonical(m.protected, extraProtected)
	m.secret = appendCanonical(m.secret[:len(defaultSecret)], extraSecret)
	for _, p := range m.secret {
		m.secretC = append(m.secretC, components(p))
	}
	for _, p := range m.protected {
		m.protectedC = append(m.protectedC, components(p))
	}
	return m
}

// denies reports whether action (a file_system action name) on the
// canonical path p is refused whatever the policy says.
func (m *mandatoryList) denies(action, p string) bool {
	if m == nil || action == "stat" {
		return false
	}
	xc := components(p)
	for _, pc := range m.secretC {
		if covers(pc, xc) {
			return true
		}
	}
	if readOnlyActions[action] {
		return false
	}
	tree := action == "delete" || action == "move"
	for _, pc := range m.protectedC {
		if covers(pc, xc) || (tree && covers(xc, pc)) {
			return true
		}
	}
	for _, c := range xc {
		if slices.Contains(protectedAnywhere, c) {
			return true
		}
	}
	return strings.Contains(p+"/", "/.git/hooks/") || (tree && path.Base(p) == ".git")
}

// components splits a canonical path; "/" has none.
func components(p string) []string {
	p = strings.Trim(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

// covers reports whether the pattern components pc match the path
// components xc or a prefix of them (an ancestor), "*" matching any one
// component on either side (the ancestor test of denies swaps them).
func covers(pc, xc []string) bool {
	if len(xc) < len(pc) {
		return false
	}
	for i, c := range pc {
		if c != "*" && xc[i] != "*" && c != xc[i] {
			return false
		}
	}
	return true
}

// mandatoryDeny refuses a request on the deny list with the uniform
// denial, recorded and audited like a Cedar deny.
func (s *session) mandatoryDeny(a authz.Action, r authz.Resource) error {
	if !s.run.mandatory.denies(a.Name, r.ID()) {
		return nil
	}
	d := authz.Decision{PolicyIDs: []string{MandatoryDenyID}}
	s.auditNow(a, r, d)
	den := ipc.Denial{Action: a.String(), Resource: r.String(), PolicyIDs: []string{MandatoryDenyID}}
	s.mu.Lock()
	s.denials = append(s.denials, den)
	s.mu.Unlock()
	return &ipc.Error{Code: ipc.CodeDenied, Message: authz.DenialMessage(s.run.principal.Name, a, r), Denial: &den}
}

// checkFile is every file handler's authorisation: the mandatory deny list
// first, then Cedar.
func (s *session) checkFile(a authz.Action, r authz.Resource, ctx map[string]any) error {
	if err := s.mandatoryDeny(a, r); err != nil {
		return err
	}
	return s.authorize(a, r, ctx)
}

// visible is the listing form of checkFile: a refusal hides the entry.
func (s *session) visible(a authz.Action, r authz.Resource) bool {
	if s.run.mandatory.denies(a.Name, r.ID()) {
		return false
	}
	return s.authorizeQuiet(a, r)
}

// appendCanonical adds operator paths, made absolute against the current
// directory (rex-exec's --policy may be relative) and canonical.
func appendCanonical(list, paths []string) []string {
	for _, p := range paths {
		if p == "" {
			continue
		}
		if a, err := filepath.Abs(p); err == nil {
			if c, err := authz.Canonical(a); err == nil {
				list = append(list, c)
			}
		}
	}
	return list
}

// checkMaybeCreate authorises acts on an object that is created first when
// missing. The operation's own actions are checked first and create last,
// so that a principal who may not write an object is refused on the same
// action whether it exists or not (F14: no existence oracle); create then
// decides only for those who could write it.
func (s *session) checkMaybeCreate(res authz.Resource, missing bool, acts ...authz.Action) error {
	for _, a := range acts {
		if err := s.checkFile(a, res, nil); err != nil {
			return err
		}
	}
	if missing {
		return s.checkFile(actCreate, res, nil)
	}
	return nil
}
