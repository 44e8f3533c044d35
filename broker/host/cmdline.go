package host

import (
	"regexp"
	"strings"
	"sync"
)

// Command lines of other processes often carry secrets (`--password=…`,
// `TOKEN=…`, `https://user:pass@host`). proc.list shows command lines of
// processes a policy lets a principal list, so their secret-looking values
// are redacted before they leave the broker (SECURITY-TESTS N04).

// secretName matches option and variable names that hold secrets. The
// patterns are compiled on first use, not at start-up: every rex-exec
// start would pay for them.
var secretName = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`(?i)(pass(word|wd|phrase)?|secret|token|api[-_]?key|access[-_]?key|private[-_]?key|auth|credentials?|session|cookie|signature|pwd)$`)
})

// urlPassword matches the password of a URL's user information.
var urlPassword = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(://[^/\s:@]*:)[^/\s@]+@`) })

const redacted = "[REDACTED]"

// RedactCommand returns args with secret-looking values replaced: values of
// --name=value, -name=value and NAME=value when the name looks secret, the
// argument after a bare secret-looking option (--password value), and
// passwords inside URLs.
func RedactCommand(args []string) []string {
	out := make([]string, len(args))
	redactNext := false
	for i, a := range args {
		switch {
		case redactNext && !strings.HasPrefix(a, "-"):
			out[i], redactNext = redacted, false
			continue
		default:
			redactNext = false
		}
		if name, _, ok := strings.Cut(a, "="); ok && secretName().MatchString(strings.TrimLeft(name, "-")) {
			out[i] = name + "=" + redacted
			continue
		}
		if strings.HasPrefix(a, "-") && secretName().MatchString(strings.TrimLeft(a, "-")) {
			redactNext = true
		}
		out[i] = urlPassword().ReplaceAllString(a, "${1}"+redacted+"@")
	}
	return out
}
