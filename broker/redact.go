package broker

import (
	"bufio"
	"bytes"
	"os"
	"regexp"
	"strings"
)

// DefaultRedactionDict is where rex-broker looks for the redaction
// dictionary when --redaction-dict is not given.
const DefaultRedactionDict = "/etc/rex/redaction.conf"

// Redacted replaces every line of a redacted_read that no pattern of the
// dictionary matches.
const Redacted = "[REDACTED]"

// maxRedactionPatterns bounds the dictionary the broker compiles.
const maxRedactionPatterns = 4096

// redactor holds the operator's redaction dictionary: one printf-style
// pattern per line (blank lines and lines starting with # are ignored).
// A pattern matches a whole line; %s is one run of non-blank characters,
// %d a decimal integer, %x a hex number, %f a decimal number, %c one
// character, %* any text, %% a percent sign; everything else is literal.
type redactor struct {
	res []*regexp.Regexp
}

// loadRedactor reads the dictionary at path. A missing or unreadable file
// gives an empty dictionary, so redacted_read then redacts every line: the
// safe reading of "no patterns".
func loadRedactor(path string) *redactor {
	r := &redactor{}
	if path == "" {
		return r
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return r
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() && len(r.res) < maxRedactionPatterns {
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if re, err := regexp.Compile(printfPattern(line)); err == nil {
			r.res = append(r.res, re)
		}
	}
	return r
}

// printfPattern turns one dictionary line into an anchored regexp.
func printfPattern(p string) string {
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(p); i++ {
		if p[i] != '%' || i+1 == len(p) {
			b.WriteString(regexp.QuoteMeta(p[i : i+1]))
			continue
		}
		i++
		switch p[i] {
		case 's':
			b.WriteString(`\S+`)
		case 'd', 'i', 'u':
			b.WriteString(`[-+]?[0-9]+`)
		case 'x', 'X':
			b.WriteString(`[0-9a-fA-F]+`)
		case 'f', 'g', 'e':
			b.WriteString(`[-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?`)
		case 'c':
			b.WriteString(`.`)
		case '*':
			b.WriteString(`.*`)
		case '%':
			b.WriteString(`%`)
		default:
			b.WriteString(regexp.QuoteMeta(p[i-1 : i+1]))
		}
	}
	b.WriteString("$")
	return b.String()
}

// apply keeps the lines that match a pattern and replaces the others with
// Redacted, keeping line endings.
func (r *redactor) apply(data []byte) []byte {
	var out bytes.Buffer
	for len(data) > 0 {
		line, rest, nl := bytes.Cut(data, []byte{'\n'})
		data = rest
		if r.keep(string(line)) {
			out.Write(line)
		} else {
			out.WriteString(Redacted)
		}
		if nl {
			out.WriteByte('\n')
		}
	}
	return out.Bytes()
}

func (r *redactor) keep(line string) bool {
	for _, re := range r.res {
		if re.MatchString(line) {
			return true
		}
	}
	return false
}
