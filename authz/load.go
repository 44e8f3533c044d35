package authz

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	xast "github.com/cedar-policy/cedar-go/x/exp/ast"
)

// EntitiesFile is the name of the optional file, next to the policies, that
// holds extra entities (Cedar JSON entity format), such as group hierarchies.
const EntitiesFile = "entities.json"

// maxFileSize caps one policy or entities file; policy sets are small and a
// runaway file should not exhaust the broker's memory on reload.
const maxFileSize = 16 << 20

// File is one named input of LoadFiles. A file whose base name is
// entities.json holds entities; any other holds Cedar policies.
type File struct {
	Name string
	Data []byte
}

// Problem is one error found while loading, at file:line:col. Line is 0
// when the problem concerns the file as a whole.
type Problem struct {
	File      string
	Line, Col int
	Msg       string
}

func (p Problem) String() string {
	if p.Line == 0 {
		return fmt.Sprintf("%s: %s", p.File, p.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s", p.File, p.Line, p.Col, p.Msg)
}

// LoadError lists every problem of a policy set that failed to load.
type LoadError struct {
	Problems []Problem
}

func (e *LoadError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// PolicySet is a loaded, validated set of policies with the entities they
// are evaluated against. It is immutable and safe for concurrent use.
type PolicySet struct {
	policies []*policy
	// byAction holds, for every action of the schema, the policies whose
	// action scope can match it, in load order: a decision only evaluates
	// those, so its cost does not grow with policies about other actions.
	byAction map[types.EntityUID]actionIndex
	// entities are the schema's actions plus entities.json.
	entities types.EntityMap
}

// actionIndex splits the policies of one action by resource scope: those
// that may match any resource (no scope, `is T`), and those pinned to an
// entity (`== E`, `in E`, `is T in E`), which only a request whose resource
// is E or lies under E can match. A decision then evaluates only the
// policies about its resource's chain, so its cost grows neither with
// policies about other actions nor with policies about other resources.
type actionIndex struct {
	all   policyList
	any   policyList
	in    map[types.EntityUID]policyList // in E, is T in E: E and below
	equal map[types.EntityUID]policyList // == E: E only
}

func (x *actionIndex) add(p *policy) {
	if len(x.all) > 0 && x.all[len(x.all)-1] == p {
		return
	}
	x.all = append(x.all, p)
	switch sc := p.policy.AST().Resource.(type) {
	case xast.ScopeTypeEq:
		if x.equal == nil {
			x.equal = map[types.EntityUID]policyList{}
		}
		x.equal[sc.Entity] = append(x.equal[sc.Entity], p)
	case xast.ScopeTypeIn:
		x.addIn(sc.Entity, p)
	case xast.ScopeTypeIsIn:
		x.addIn(sc.Entity, p)
	default:
		x.any = append(x.any, p)
	}
}

func (x *actionIndex) addIn(e types.EntityUID, p *policy) {
	if x.in == nil {
		x.in = map[types.EntityUID]policyList{}
	}
	x.in[e] = append(x.in[e], p)
}

// candidates returns, in load order, the policies that may apply to a
// request on resource; ancestors yields every entity the resource is in,
// by the request's entities (so parents from entities.json count).
func (x *actionIndex) candidates(resource types.EntityUID, ancestors func(yield func(types.EntityUID) bool)) policyList {
	if len(x.in) == 0 && len(x.equal) == 0 {
		return x.any
	}
	out := append(policyList(nil), x.any...)
	out = append(out, x.equal[resource]...)
	out = append(out, x.in[resource]...)
	ancestors(func(a types.EntityUID) bool {
		out = append(out, x.in[a]...)
		return true
	})
	slices.SortFunc(out, func(a, b *policy) int { return a.order - b.order })
	return slices.CompactFunc(out, func(a, b *policy) bool { return a == b })
}

// Len is the number of policies.
func (s *PolicySet) Len() int { return len(s.policies) }

// IDs returns the ids of the policies in load order.
func (s *PolicySet) IDs() []string {
	ids := make([]string, len(s.policies))
	for i, p := range s.policies {
		ids[i] = p.id
	}
	return ids
}

// LoadPath loads policies from files and directories. A directory
// contributes every *.cedar file in it, in name order, and its entities.json
// when present; subdirectories are not entered.
func LoadPath(paths ...string) (*PolicySet, error) {
	var files []File
	var probs []Problem
	add := func(name string) {
		data, err := readCapped(name)
		if err != nil {
			probs = append(probs, Problem{File: name, Msg: err.Error()})
			return
		}
		files = append(files, File{Name: name, Data: data})
	}
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			probs = append(probs, Problem{File: p, Msg: err.Error()})
			continue
		}
		if !fi.IsDir() {
			add(p)
			continue
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			probs = append(probs, Problem{File: p, Msg: err.Error()})
			continue
		}
		for _, e := range entries {
			if e.IsDir() || !(strings.HasSuffix(e.Name(), ".cedar") || e.Name() == EntitiesFile) {
				continue
			}
			add(filepath.Join(p, e.Name()))
		}
	}
	if len(probs) > 0 {
		return nil, &LoadError{Problems: probs}
	}
	return LoadFiles(files)
}

func readCapped(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("larger than %d bytes", maxFileSize)
	}
	return data, nil
}

// LoadFiles parses every file, validates every policy against the schema
// and returns the set, or a *LoadError listing every problem found.
//
// A policy's id is its @id("...") annotation, else file:line of its first
// line; two policies with the same id are an error, since audit records and
// denials name policies by id.
func LoadFiles(files []File) (*PolicySet, error) {
	cs, err := loadSchema()
	if err != nil {
		return nil, err
	}
	s := &PolicySet{entities: make(types.EntityMap, len(cs.actions))}
	for uid, e := range cs.actions {
		s.entities[uid] = e
	}
	var probs []Problem
	seen := map[string]Problem{}
	for _, f := range files {
		if filepath.Base(f.Name) == EntitiesFile {
			probs = append(probs, s.addEntities(cs, f)...)
			continue
		}
		list, err := cedar.NewPolicyListFromBytes(f.Name, f.Data)
		if err != nil {
			probs = append(probs, parseProblem(f.Name, err))
			continue
		}
		for _, p := range list {
			pos := p.Position()
			at := Problem{File: f.Name, Line: pos.Line, Col: pos.Column}
			id := f.Name + ":" + strconv.Itoa(pos.Line)
			if v, ok := p.Annotations()["id"]; ok {
				id = string(v)
			}
			if first, dup := seen[id]; dup {
				at.Msg = fmt.Sprintf("duplicate policy id %q (first at %s:%d:%d)", id, first.File, first.Line, first.Col)
				probs = append(probs, at)
				continue
			}
			seen[id] = at
			if err := cs.validator.Policy(id, (*xast.Policy)(p.AST())); err != nil {
				// The validator's errors come in map order; sorting keeps
				// output stable from one run to the next.
				prefix := "for policy `" + id + "`, "
				var msgs []string
				for _, e := range flatten(err) {
					msgs = append(msgs, strings.TrimPrefix(e.Error(), prefix))
				}
				slices.Sort(msgs)
				for _, m := range slices.Compact(msgs) {
					at.Msg = m
					probs = append(probs, at)
				}
				continue
			}
			s.policies = append(s.policies, &policy{id: id, policy: p})
		}
	}
	if len(probs) > 0 {
		return nil, &LoadError{Problems: probs}
	}
	s.index(cs)
	return s, nil
}

// index fills byAction from each policy's action scope.
func (s *PolicySet) index(cs *compiledSchema) {
	s.byAction = make(map[types.EntityUID]actionIndex, len(cs.actions))
	for uid := range cs.actions {
		s.byAction[uid] = actionIndex{}
	}
	for i, p := range s.policies {
		p.order = i
		var scope []types.EntityUID
		switch sc := p.policy.AST().Action.(type) {
		case xast.ScopeTypeEq:
			scope = []types.EntityUID{sc.Entity}
		case xast.ScopeTypeIn:
			scope = cs.members[sc.Entity]
		case xast.ScopeTypeInSet:
			for _, e := range sc.Entities {
				scope = append(scope, cs.members[e]...)
			}
		default:
			// Unconstrained (or a scope form added to Cedar later):
			// the policy is a candidate for every action, which is
			// always correct, only slower.
			for uid := range cs.actions {
				scope = append(scope, uid)
			}
		}
		for _, uid := range scope {
			x := s.byAction[uid]
			x.add(p)
			s.byAction[uid] = x
		}
	}
}

func (s *PolicySet) addEntities(cs *compiledSchema, f File) []Problem {
	var m types.EntityMap
	if err := json.Unmarshal(f.Data, &m); err != nil {
		return []Problem{{File: f.Name, Msg: "entities: " + err.Error()}}
	}
	var probs []Problem
	uids := slices.SortedFunc(maps.Keys(m), func(a, b types.EntityUID) int { return strings.Compare(a.String(), b.String()) })
	for _, uid := range uids {
		if _, isAction := cs.actions[uid]; isAction || uid.Type == "Action" || strings.HasSuffix(string(uid.Type), "::Action") {
			probs = append(probs, Problem{File: f.Name, Msg: fmt.Sprintf("entity %s: actions come from the schema and cannot be defined here", uid)})
			continue
		}
		if _, dup := s.entities[uid]; dup {
			probs = append(probs, Problem{File: f.Name, Msg: fmt.Sprintf("entity %s is defined twice", uid)})
			continue
		}
		if err := cs.validator.Entity(m[uid]); err != nil {
			probs = append(probs, Problem{File: f.Name, Msg: fmt.Sprintf("entity %s: %v", uid, err)})
			continue
		}
		s.entities[uid] = m[uid]
	}
	return probs
}

// cedarPos matches the position and token that cedar-go's parser puts in
// its messages: `parse error at <input>:3:14 "foo": message`.
var cedarPos = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^(?:parse error at )?<input>:(\d+):(\d+):? *(?:"((?:[^"\\]|\\.)*)": )?`)
})

func parseProblem(file string, err error) Problem {
	msg := strings.TrimPrefix(err.Error(), "parser error: ")
	// The message carries no position when it is not anchored: point at
	// the file's start so that the file:line:col form still holds.
	p := Problem{File: file, Line: 1, Col: 1, Msg: "syntax error: " + msg}
	m := cedarPos().FindStringSubmatch(msg)
	if m == nil {
		return p
	}
	// cedar-go reports some errors (invalid UTF-8) at line 0.
	p.Line = max(1, atoi(m[1]))
	p.Col = max(1, atoi(m[2]))
	rest := msg[len(m[0]):]
	switch {
	case m[3] != "":
		p.Msg = fmt.Sprintf("syntax error near \"%s\": %s", m[3], rest)
	case strings.Contains(m[0], `""`):
		p.Msg = "syntax error at end of input: " + rest
	default:
		p.Msg = "syntax error: " + rest
	}
	return p
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

func flatten(err error) []error {
	var j interface{ Unwrap() []error }
	if errors.As(err, &j) {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}
