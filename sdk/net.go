package sdk

import (
	"context"

	"github.com/risor-io/risor/object"

	"github.com/rex-sh/rex/ipc"
)

// netModule is the `net` module. The worker has no network: every request
// is made by the broker, which authorises the URL (and every redirect),
// resolves the name once and connects only to the address it checked.
type netModule struct {
	c Caller
}

func newNetModule(c Caller) *object.Module {
	m := &netModule{c: c}
	return object.NewBuiltinsModule("net", map[string]object.Object{
		"get":         object.NewBuiltin("get", m.get),
		"connect":     object.NewBuiltin("connect", m.connect),
		"resolve":     object.NewBuiltin("resolve", m.resolve),
		"interfaces":  object.NewBuiltin("interfaces", m.interfaces),
		"connections": object.NewBuiltin("connections", m.connections),
	})
}

// get(url, {headers, timeout, max_bytes}) → {status, headers, body, url}.
// timeout is in milliseconds and bounds the whole exchange.
func (m *netModule) get(ctx context.Context, args ...object.Object) object.Object {
	pos, o, oerr := splitArgs("net.get", args, 1, "headers", "timeout", "max_bytes")
	if oerr != nil {
		return oerr
	}
	url, oerr := stringArg("net.get", pos, 0, "url")
	if oerr != nil {
		return oerr
	}
	req := ipc.NetGetReq{URL: url}
	if req.TimeoutMs, oerr = o.int("timeout", 0); oerr != nil {
		return oerr
	}
	if req.MaxBytes, oerr = o.int("max_bytes", 0); oerr != nil {
		return oerr
	}
	if h, ok := o.m["headers"]; ok && h != object.Nil {
		hm, ok := h.(*object.Map)
		if !ok {
			return object.TypeErrorf("type error: net.get() option \"headers\" must be a map (%s given)", h.Type())
		}
		req.Headers = map[string]string{}
		for k, v := range hm.Value() {
			s, ok := v.(*object.String)
			if !ok {
				return object.TypeErrorf("type error: net.get() header %q must be a string (%s given)", k, v.Type())
			}
			req.Headers[k] = s.Value()
		}
	}
	var r ipc.NetGetResp
	if err := callNoFD(m.c, ipc.OpNetGet, &req, &r); err != nil {
		return raise(err)
	}
	hdrs := make(map[string]object.Object, len(r.Headers))
	for k, v := range r.Headers {
		hdrs[k] = object.NewString(v)
	}
	return object.NewMap(map[string]object.Object{
		"status":  object.NewInt(int64(r.Status)),
		"headers": object.NewMap(hdrs),
		"body":    object.NewString(string(r.Body)),
		"url":     object.NewString(r.URL),
	})
}

// connect(host, port, {timeout}) → {address, ms}: a TCP probe, closed at
// once.
func (m *netModule) connect(ctx context.Context, args ...object.Object) object.Object {
	pos, o, oerr := splitArgs("net.connect", args, 2, "timeout")
	if oerr != nil {
		return oerr
	}
	h, oerr := stringArg("net.connect", pos, 0, "host")
	if oerr != nil {
		return oerr
	}
	port, ok := pos[1].(*object.Int)
	if !ok {
		return object.TypeErrorf("type error: net.connect() expected an int port (%s given)", pos[1].Type())
	}
	timeout, oerr := o.int("timeout", 0)
	if oerr != nil {
		return oerr
	}
	var r ipc.NetConnectResp
	if err := callNoFD(m.c, ipc.OpNetConnect, &ipc.NetConnectReq{Host: h, Port: int(port.Value()), TimeoutMs: timeout}, &r); err != nil {
		return raise(err)
	}
	return object.NewMap(map[string]object.Object{
		"address": object.NewString(r.Address),
		"ms":      object.NewInt(r.Ms),
	})
}

// resolve(host) → list of address strings, IPv4 first.
func (m *netModule) resolve(ctx context.Context, args ...object.Object) object.Object {
	pos, _, oerr := splitArgs("net.resolve", args, 1)
	if oerr != nil {
		return oerr
	}
	h, oerr := stringArg("net.resolve", pos, 0, "host")
	if oerr != nil {
		return oerr
	}
	var r ipc.NetResolveResp
	if err := callNoFD(m.c, ipc.OpNetResolve, &ipc.HostReq{Host: h}, &r); err != nil {
		return raise(err)
	}
	return stringList(r.Addrs)
}

// interfaces() → list of {name, index, mtu, mac, flags, addrs}.
func (m *netModule) interfaces(ctx context.Context, args ...object.Object) object.Object {
	if _, _, oerr := splitArgs("net.interfaces", args, 0); oerr != nil {
		return oerr
	}
	var r ipc.NetInterfacesResp
	if err := callNoFD(m.c, ipc.OpNetInterfaces, ipc.Empty{}, &r); err != nil {
		return raise(err)
	}
	out := make([]object.Object, len(r.Interfaces))
	for i, f := range r.Interfaces {
		out[i] = object.NewMap(map[string]object.Object{
			"name": object.NewString(f.Name), "index": object.NewInt(int64(f.Index)),
			"mtu": object.NewInt(int64(f.MTU)), "mac": object.NewString(f.MAC),
			"flags": stringList(f.Flags), "addrs": stringList(f.Addrs),
		})
	}
	return object.NewList(out)
}

// connections() → list of {proto, local, remote, state, uid, inode}.
func (m *netModule) connections(ctx context.Context, args ...object.Object) object.Object {
	if _, _, oerr := splitArgs("net.connections", args, 0); oerr != nil {
		return oerr
	}
	var r ipc.NetConnectionsResp
	if err := callNoFD(m.c, ipc.OpNetConnections, ipc.Empty{}, &r); err != nil {
		return raise(err)
	}
	out := make([]object.Object, len(r.Conns))
	for i, c := range r.Conns {
		out[i] = object.NewMap(map[string]object.Object{
			"proto": object.NewString(c.Proto), "local": object.NewString(c.Local),
			"remote": object.NewString(c.Remote), "state": object.NewString(c.State),
			"uid": object.NewInt(int64(c.UID)), "inode": object.NewInt(int64(c.Inode)),
		})
	}
	return object.NewList(out)
}
