package authz

import (
	"fmt"
	"iter"
	"slices"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
)

// Decision is the answer to one request.
type Decision struct {
	Allow bool
	// PolicyIDs are the determining policies: the permits that allowed, or
	// the forbids that denied. Empty on a default deny.
	PolicyIDs []string
	// Errors lists the policies whose condition failed to evaluate, as
	// "id: message"; such a policy does not apply (Cedar semantics). A
	// request that could not be evaluated at all is reported here as
	// "request: message" and denied.
	Errors []string
}

// policyList is the slice of policies that may apply to one action, in load
// order; it is what cedar.Authorize iterates.
type policyList []*policy

type policy struct {
	id     string
	policy *cedar.Policy
	order  int // position in load order
}

func (l policyList) All() iter.Seq2[cedar.PolicyID, *cedar.Policy] {
	return func(yield func(cedar.PolicyID, *cedar.Policy) bool) {
		for _, p := range l {
			if !yield(cedar.PolicyID(p.id), p.policy) {
				return
			}
		}
	}
}

// Authorize decides whether p may perform a on r. ctx is the request
// context (see ContextEntity for the value types it takes); nil means empty.
// A nil PolicySet, an action the schema does not know, an invalid resource
// or an unconvertible context is a deny with the reason in Errors.
func (s *PolicySet) Authorize(p Principal, a Action, r Resource, ctx map[string]any) Decision {
	if p.Name == "" {
		return deny("principal has no name")
	}
	return s.authorize(p.entity(), a, r, ctx)
}

// authorize is Authorize with the principal's entity already built.
func (s *PolicySet) authorize(principal types.Entity, a Action, r Resource, ctx map[string]any) Decision {
	if s == nil {
		return deny("no policies loaded")
	}
	if r.invalid != "" || (r.file == nil && len(r.entities) == 0) {
		return deny(cmpOr(r.invalid, "empty resource"))
	}
	rents := r.ents()
	act := a.uid()
	index, known := s.byAction[act]
	if !known {
		return deny("unknown action " + a.String())
	}
	rec, ctxEnts, err := contextRecord(ctx)
	if err != nil {
		return deny("context: " + err.Error())
	}
	own := make([]types.Entity, 0, 1+len(rents)+len(ctxEnts))
	own = append(own, principal)
	own = append(own, rents...)
	own = append(own, ctxEnts...)
	ents := newRequestEntities(own, s.entities)
	candidates := index.candidates(r.uid(), func(yield func(types.EntityUID) bool) { ancestors(ents, r.uid(), yield) })

	dec, diag := cedar.Authorize(candidates, ents, cedar.Request{
		Principal: principal.UID,
		Action:    act,
		Resource:  r.uid(),
		Context:   rec,
	})
	out := Decision{Allow: dec == cedar.Allow}
	for _, reason := range diag.Reasons {
		out.PolicyIDs = append(out.PolicyIDs, string(reason.PolicyID))
	}
	for _, e := range diag.Errors {
		out.Errors = append(out.Errors, fmt.Sprintf("%s: %s", e.PolicyID, e.Message))
	}
	return out
}

// ancestors yields every entity that uid is `in`, following parents
// through the request's own entities and entities.json, each once.
func ancestors(ents *requestEntities, uid types.EntityUID, yield func(types.EntityUID) bool) {
	seen := map[types.EntityUID]bool{uid: true}
	queue := []types.EntityUID{uid}
	for len(queue) > 0 {
		e, ok := ents.Get(queue[0])
		queue = queue[1:]
		if !ok {
			continue
		}
		for p := range e.Parents.All() {
			if seen[p] {
				continue
			}
			seen[p] = true
			if !yield(p) {
				return
			}
			queue = append(queue, p)
		}
	}
}

func deny(why string) Decision { return Decision{Errors: []string{"request: " + why}} }

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// DenialMessage is the text of a denial as scripts and people see it,
// worded like Rex's:
//
//	Permission denied: alice unauthorized to perform file_system::Action::"read" for file_system::File::"/etc/shadow"
func DenialMessage(principalName string, a Action, r Resource) string {
	return fmt.Sprintf("Permission denied: %s unauthorized to perform %s for %s", principalName, a, r)
}

// requestEntities layers the entities of one request (principal, resource
// and its parents, context entities) over the policy set's static entities
// (actions and entities.json) without copying the static map. When both
// define an entity, as entities.json may for a user, the two are merged:
// parents are joined and the request's attributes win.
type requestEntities struct {
	own    []types.Entity
	index  map[types.EntityUID]int
	static types.EntityMap
}

// linearLimit is the number of request entities below which a scan beats
// building a map.
const linearLimit = 16

func newRequestEntities(own []types.Entity, static types.EntityMap) *requestEntities {
	re := &requestEntities{own: own, static: static}
	if len(own) > linearLimit {
		re.index = make(map[types.EntityUID]int, len(own))
		for i := len(own) - 1; i >= 0; i-- {
			re.index[own[i].UID] = i
		}
	}
	return re
}

func (re *requestEntities) find(uid types.EntityUID) (types.Entity, bool) {
	if re.index != nil {
		i, ok := re.index[uid]
		if !ok {
			return types.Entity{}, false
		}
		return re.own[i], true
	}
	for i := range re.own {
		if re.own[i].UID == uid {
			return re.own[i], true
		}
	}
	return types.Entity{}, false
}

func (re *requestEntities) Get(uid types.EntityUID) (types.Entity, bool) {
	own, ok := re.find(uid)
	st, sok := re.static[uid]
	switch {
	case ok && sok:
		return merge(st, own), true
	case ok:
		return own, true
	}
	return st, sok
}

func merge(base, over types.Entity) types.Entity {
	return types.Entity{
		UID:        over.UID,
		Parents:    types.NewEntityUIDSet(slices.Concat(base.Parents.Slice(), over.Parents.Slice())...),
		Attributes: overlay(base.Attributes, over.Attributes),
		Tags:       overlay(base.Tags, over.Tags),
	}
}

func overlay(base, over types.Record) types.Record {
	m := make(types.RecordMap, base.Len()+over.Len())
	for k, v := range base.All() {
		m[k] = v
	}
	for k, v := range over.All() {
		m[k] = v
	}
	return types.NewRecord(m)
}
