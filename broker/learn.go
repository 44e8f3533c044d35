package broker

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/rex-sh/rex/authz"
)

// Learner records what a learning run does, so that rex-exec --learn can
// write the least policy that permits exactly that. A run with a Learner
// allows every request that Cedar could evaluate (the script still runs in
// the sandbox, and the broker still acts with the invoking user's own
// privileges); requests that are invalid in themselves (a non-canonical
// path, an unknown action) stay denied. Every decision is still audited.
type Learner struct {
	mu   sync.Mutex
	seen map[learnKey]bool
	reqs []Learned
}

// Learned is one distinct request of a learning run.
type Learned struct {
	Principal string
	Action    authz.Action
	// ResourceType and ResourceID name the entity, such as
	// file_system::File and "/etc/hosts".
	ResourceType, ResourceID string
}

type learnKey struct {
	action             authz.Action
	typ, id, principal string
}

// LearnPolicyID is the policy id that audit records and results name for a
// request allowed because the run was learning.
const LearnPolicyID = "rex-learn"

// NewLearner returns an empty Learner.
func NewLearner() *Learner { return &Learner{seen: map[learnKey]bool{}} }

// Requests returns the distinct requests recorded, in the order they were
// first made.
func (l *Learner) Requests() []Learned {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Learned(nil), l.reqs...)
}

func (l *Learner) record(p authz.Principal, a authz.Action, r authz.Resource) {
	k := learnKey{action: a, typ: r.Type(), id: r.ID(), principal: p.Name}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen[k] {
		return
	}
	l.seen[k] = true
	l.reqs = append(l.reqs, Learned{Principal: p.Name, Action: a, ResourceType: k.typ, ResourceID: k.id})
}

// decide is the one place a run asks Cedar. When the run learns, a request
// that Cedar could evaluate is recorded and allowed, whatever the policy
// says. Requests the loaded policy allows are recorded too: the learned
// policy stands alone and must permit them as well. The run's Memo
// answers a repeated file request without evaluating it again.
func (r *run) decide(a authz.Action, res authz.Resource, ctx map[string]any) authz.Decision {
	r.memoOnce.Do(func() { r.memo = authz.NewMemo(r.policies, r.principal) })
	d := r.memo.Authorize(a, res, ctx)
	if r.learn == nil || invalidRequest(d) {
		return d
	}
	r.learn.record(r.principal, a, res)
	if d.Allow {
		return d
	}
	return authz.Decision{Allow: true, PolicyIDs: []string{LearnPolicyID}}
}

// invalidRequest says whether Cedar refused the request itself rather than
// deciding it; learning must not turn that into an allow.
func invalidRequest(d authz.Decision) bool {
	for _, e := range d.Errors {
		if strings.HasPrefix(e, "request: ") {
			return true
		}
	}
	return false
}

// LearnedPolicy prints the least Cedar policy that permits exactly reqs:
// one permit per principal, action and resource, each with an @id, under a
// comment naming the script it was learned from.
func LearnedPolicy(script string, when time.Time, reqs []Learned) string {
	var b strings.Builder
	fmt.Fprintf(&b, "// Learned by rex-exec --learn from %s on %s.\n", oneLine(script), when.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "// It permits exactly the %d distinct requests that run made; review it before use.\n", len(reqs))
	for i, q := range reqs {
		fmt.Fprintf(&b, "\n@id(%s)\npermit(\n    principal == User::%s,\n    action == %s,\n    resource == %s::%s\n);\n",
			cedarString(fmt.Sprintf("learned-%03d-%s", i+1, q.Action.Name)),
			cedarString(q.Principal), q.Action, q.ResourceType, cedarString(q.ResourceID))
	}
	return b.String()
}

// oneLine keeps a script name from ending the comment it is printed in.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

// cedarString quotes s as a Cedar string literal, whose escapes are Rust's:
// \n \r \t \0 \\ \" \' and \u{hex}, not Go's \x.
func cedarString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case 0:
			b.WriteString(`\0`)
		default:
			if r < 0x20 || r == 0x7f {
				fmt.Fprintf(&b, `\u{%x}`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}
