package authz

import (
	"sync"

	"github.com/cedar-policy/cedar-go/types"
)

// Memo answers the requests of one principal against one policy set, as
// Authorize does, and remembers the answer to each request that is fully
// described by its key: a file or directory resource (type, canonical path
// and every fstat attribute of the object) with no context. Such a request
// builds the same entities every time, and Cedar has no clock or other
// input, so the remembered answer is exactly the answer Cedar would give
// again. A script that reads a hundred files in one directory asks "open
// on the Dir" a hundred times; only the first is evaluated.
//
// Anything else (a context, a URL, a process, an invalid resource) is
// evaluated every time. A Memo is safe for concurrent use.
type Memo struct {
	ps        *PolicySet
	name      string
	principal types.Entity

	mu sync.Mutex
	m  map[memoKey]Decision
}

// memoMax bounds a Memo; past it, it starts over.
const memoMax = 4096

type memoKey struct {
	act Action
	res fileKey
}

// fileKey is everything a file or directory resource's entities are built
// from (see pathResource).
type fileKey struct {
	typ      types.EntityType
	path     string
	attrs    FileAttrs
	hasAttrs bool
}

// NewMemo returns a Memo for p's requests against ps.
func NewMemo(ps *PolicySet, p Principal) *Memo {
	return &Memo{ps: ps, name: p.Name, principal: p.entity()}
}

// Authorize is PolicySet.Authorize for the Memo's principal. The returned
// Decision's slices may be shared with earlier answers: read them only.
func (m *Memo) Authorize(a Action, r Resource, ctx map[string]any) Decision {
	if m.name == "" {
		return deny("principal has no name")
	}
	if ctx != nil || r.file == nil || r.invalid != "" {
		return m.ps.authorize(m.principal, a, r, ctx)
	}
	k := memoKey{act: a, res: r.file.key}
	m.mu.Lock()
	d, ok := m.m[k]
	m.mu.Unlock()
	if ok {
		return d
	}
	d = m.ps.authorize(m.principal, a, r, nil)
	m.mu.Lock()
	if m.m == nil || len(m.m) >= memoMax {
		m.m = make(map[memoKey]Decision, 64)
	}
	m.m[k] = d
	m.mu.Unlock()
	return d
}
