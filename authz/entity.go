package authz

import (
	"net/url"
	"strconv"
	"sync"

	"github.com/cedar-policy/cedar-go/types"
)

// Entity types of the schema that rex builds requests from.
const (
	typeUser    = types.EntityType("User")
	typeGroup   = types.EntityType("Group")
	typeFile    = types.EntityType("file_system::File")
	typeDir     = types.EntityType("file_system::Dir")
	typeURL     = types.EntityType("network::url")
	typeProcess = types.EntityType("process_system::Process")
	typeService = types.EntityType("systemd::Service")
	typeHost    = types.EntityType("sysinfo::Hostname")
)

// Principal is the user a run acts for, as the broker learnt it from
// SO_PEERCRED: login name (or decimal uid when it has none), uid, and the
// names of its Unix groups.
type Principal struct {
	Name   string
	UID    uint32
	Groups []string
}

// entity returns User::"<name>" with uid and name, in one Group per Unix
// group.
func (p Principal) entity() types.Entity {
	parents := make([]types.EntityUID, len(p.Groups))
	for i, g := range p.Groups {
		parents[i] = types.NewEntityUID(typeGroup, types.String(g))
	}
	return types.Entity{
		UID:     types.NewEntityUID(typeUser, types.String(p.Name)),
		Parents: types.NewEntityUIDSet(parents...),
		Attributes: types.NewRecord(types.RecordMap{
			"uid":  types.Long(p.UID),
			"name": types.String(p.Name),
		}),
	}
}

// Action names a schema action, such as file_system / read.
type Action struct {
	NS   string
	Name string
}

// FileAction returns the file_system action called name.
func FileAction(name string) Action { return Action{NS: "file_system", Name: name} }

func (a Action) uid() types.EntityUID {
	return types.NewEntityUID(types.EntityType(a.NS+"::Action"), types.String(a.Name))
}

// String gives the action in Cedar syntax: file_system::Action::"read".
func (a Action) String() string { return uidString(a.uid()) }

// uidString is u.String(): Type::"id", the id escaped as Rust's
// escape_debug escapes it. cedar-go escapes rune by rune with an
// allocation each, ~1 µs for a path, and a daemon names the action and the
// resource of every decision in its audit log; an id of printable ASCII
// with no quote or backslash, which the escape leaves as it is (every
// path rex canonicalises but the odd one), is joined here directly
// (TestUIDString compares the two).
func uidString(u types.EntityUID) string {
	id := string(u.ID)
	for i := 0; i < len(id); i++ {
		if c := id[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\'' || c == '\\' {
			return u.String()
		}
	}
	return string(u.Type) + "::\"" + id + "\""
}

// FileAttrs are what fstat of the opened descriptor says about a file or
// directory. Owner and Group are names ("" when the id has none); Kind is
// one of file, dir, symlink, fifo, socket, device.
type FileAttrs struct {
	Owner, Group string
	UID, GID     uint32
	Mode         uint32
	Kind         string
}

// Resource is the object of a request: its entity, plus every entity that
// Cedar needs to evaluate policies about it (the chain of parent
// directories, for files). The zero Resource is invalid and is always denied.
type Resource struct {
	// entities[0] is the resource itself.
	entities []types.Entity
	// invalid says why the resource cannot be authorised; it makes every
	// request about it a deny, so that a caller's mistake fails closed.
	invalid string
	// file, for file and directory resources, holds what the entities are
	// built from, and builds them only when a request is evaluated: a
	// request the Memo answers never needs them.
	file *fileRes
}

// fileRes is a file or directory resource: its key (equal keys make the
// same request, see Memo) and its entities, built once on first use.
type fileRes struct {
	key  fileKey
	once sync.Once
	ents []types.Entity
}

// ents returns the resource's entities, itself first.
func (r Resource) ents() []types.Entity {
	if r.file != nil {
		r.file.once.Do(r.file.build)
		return r.file.ents
	}
	return r.entities
}

// String gives the resource in Cedar syntax, with quotes escaped as Cedar
// does: file_system::File::"/etc/shadow".
func (r Resource) String() string {
	if r.file == nil && len(r.entities) == 0 {
		return "<invalid resource>"
	}
	return uidString(r.uid())
}

// Type is the Cedar entity type of the resource, such as file_system::File.
func (r Resource) Type() string {
	if r.file == nil && len(r.entities) == 0 {
		return ""
	}
	return string(r.uid().Type)
}

// ID is the entity id of the resource, such as the canonical path.
func (r Resource) ID() string {
	if r.file == nil && len(r.entities) == 0 {
		return ""
	}
	return string(r.uid().ID)
}

func (r Resource) uid() types.EntityUID {
	if r.file != nil {
		return types.NewEntityUID(r.file.key.typ, types.String(r.file.key.path))
	}
	if len(r.entities) == 0 {
		return types.EntityUID{}
	}
	return r.entities[0].UID
}

// FileResource is file_system::File::"<path>", inside the chain of its
// parent Dirs up to Dir::"/". path must be canonical (see Canonical);
// otherwise every request about the resource is denied. attrs may be nil
// when the file does not exist (yet).
func FileResource(path string, attrs *FileAttrs) Resource {
	return pathResource(typeFile, path, attrs)
}

// DirResource is file_system::Dir::"<path>", inside the chain of its parent
// Dirs up to Dir::"/", which has no parent. path must be canonical.
func DirResource(path string, attrs *FileAttrs) Resource {
	return pathResource(typeDir, path, attrs)
}

func pathResource(typ types.EntityType, path string, attrs *FileAttrs) Resource {
	if c, err := Canonical(path); err != nil || c != path {
		return Resource{
			entities: []types.Entity{{UID: types.NewEntityUID(typ, types.String(path))}},
			invalid:  "resource path " + strconv.Quote(path) + " is not canonical",
		}
	}
	f := &fileRes{key: fileKey{typ: typ, path: path, hasAttrs: attrs != nil}}
	if attrs != nil {
		f.key.attrs = *attrs
	}
	return Resource{file: f}
}

// build makes the entities of a file or directory: itself, with path and
// (when it exists) its fstat attributes, inside the chain of its parent
// Dirs up to Dir::"/".
func (f *fileRes) build() {
	k := &f.key
	rec := types.RecordMap{"path": types.String(k.path)}
	if k.hasAttrs {
		a := &k.attrs
		if a.Owner != "" {
			rec["owner"] = types.String(a.Owner)
		}
		if a.Group != "" {
			rec["group"] = types.String(a.Group)
		}
		if a.Kind != "" {
			rec["kind"] = types.String(a.Kind)
		}
		rec["uid"] = types.Long(a.UID)
		rec["gid"] = types.Long(a.GID)
		rec["mode"] = types.Long(a.Mode)
	}
	self := types.Entity{UID: types.NewEntityUID(k.typ, types.String(k.path)), Attributes: types.NewRecord(rec)}
	parent, ok := parentDir(k.path)
	if !ok {
		f.ents = []types.Entity{self}
		return
	}
	self.Parents = types.NewEntityUIDSet(types.NewEntityUID(typeDir, types.String(parent)))
	chain := dirChain(parent)
	f.ents = append(append(make([]types.Entity, 0, 1+len(chain)), self), chain...)
}

// chains caches, per directory, the attribute-less Dir entities from that
// directory up to Dir::"/", each with its parent: the same for every request
// under the directory, and the bulk of building a file resource. Entities
// are immutable values, so the cached slices are shared read-only (callers
// copy them into a slice of their own).
var chains struct {
	sync.Mutex
	m map[string][]types.Entity
}

// maxChains bounds the cache; past it, the cache starts over.
const maxChains = 4096

func dirChain(dir string) []types.Entity {
	chains.Lock()
	c, ok := chains.m[dir]
	chains.Unlock()
	if ok {
		return c
	}
	e := types.Entity{
		UID:        types.NewEntityUID(typeDir, types.String(dir)),
		Attributes: types.NewRecord(types.RecordMap{"path": types.String(dir)}),
	}
	c = []types.Entity{e}
	if parent, ok := parentDir(dir); ok {
		c[0].Parents = types.NewEntityUIDSet(types.NewEntityUID(typeDir, types.String(parent)))
		up := dirChain(parent)
		c = append(make([]types.Entity, 0, 1+len(up)), c[0])
		c = append(c, up...)
	}
	chains.Lock()
	if chains.m == nil || len(chains.m) >= maxChains {
		chains.m = make(map[string][]types.Entity, 64)
	}
	chains.m[dir] = c
	chains.Unlock()
	return c
}

// URLResource is network::url::"<raw>" with the url attribute and, when raw
// parses as an absolute URL, scheme, host, port (explicit, else the default
// of http and https) and path. The id is raw exactly as given: the caller
// decides what spelling it checks and must connect to what it checked.
func URLResource(raw string) Resource {
	rec := types.RecordMap{"url": types.String(raw)}
	if u, err := url.Parse(raw); err == nil && u.Scheme != "" && u.Host != "" {
		rec["scheme"] = types.String(u.Scheme)
		rec["host"] = types.String(u.Hostname())
		rec["path"] = types.String(u.EscapedPath())
		port := u.Port()
		if port == "" {
			port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
		}
		if n, err := strconv.ParseUint(port, 10, 16); err == nil {
			rec["port"] = types.Long(n)
		}
	}
	return single(typeURL, raw, rec)
}

// ProcessResource is process_system::Process::"<pid>".
func ProcessResource(pid int, name, username, command string) Resource {
	return single(typeProcess, strconv.Itoa(pid), types.RecordMap{
		"pid":      types.Long(pid),
		"name":     types.String(name),
		"username": types.String(username),
		"command":  types.String(command),
	})
}

// ServiceResource is systemd::Service::"<unit>".
func ServiceResource(unit string) Resource {
	return single(typeService, unit, types.RecordMap{"name": types.String(unit)})
}

// HostnameResource is sysinfo::Hostname::"<host>", for resolve_hostname.
func HostnameResource(host string) Resource {
	return single(typeHost, host, types.RecordMap{"hostname": types.String(host)})
}

// EntityResource is an entity without attributes or parents, for the
// singleton resources of the schema: sysinfo::Uname, sysinfo::Sysinfo,
// systemd::Systemd and sysctl::Sysctl.
func EntityResource(typ, id string) Resource {
	return single(types.EntityType(typ), id, nil)
}

func single(typ types.EntityType, id string, rec types.RecordMap) Resource {
	return Resource{entities: []types.Entity{{
		UID:        types.NewEntityUID(typ, types.String(id)),
		Attributes: types.NewRecord(rec),
	}}}
}
