package broker

import (
	"context"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rex-sh/rex/authz"
	"github.com/rex-sh/rex/broker/host"
	"github.com/rex-sh/rex/ipc"
)

// Network operations. A URL is authorised in its canonical spelling: the
// host lower-cased, and an address in any of its spellings (0x7f.1,
// 2130706433, [::ffff:127.0.0.1] …) written as the address itself, so no
// spelling dodges a policy on 127.0.0.1. A name is resolved once, by the
// broker; when it resolves to a loopback, private, link-local or otherwise
// non-public address, that address must be allowed as well (a policy on
// api.example.com does not open 127.0.0.1 through DNS). The connection goes
// to that one address only, so a second DNS answer cannot redirect it.

func init() {
	handlers[ipc.OpNetGet] = (*session).opNetGet
	handlers[ipc.OpNetConnect] = (*session).opNetConnect
	handlers[ipc.OpNetResolve] = (*session).opNetResolve
	handlers[ipc.OpNetInterfaces] = (*session).opNetInterfaces
	handlers[ipc.OpNetConnections] = (*session).opNetConnections
}

var (
	actNetGet     = authz.Action{NS: "network", Name: "GET"}
	actNetConnect = authz.Action{NS: "network", Name: "connect"}
	actResolve    = authz.Action{NS: "sysinfo", Name: "resolve_hostname"}
)

// Network caps and defaults.
const (
	defaultNetTimeout = 10 * time.Second
	maxNetTimeout     = 60 * time.Second
	maxRedirects      = 10
)

// netTimeout turns a requested timeout in ms into a duration: the default
// for 0, refused when negative or over the cap.
func netTimeout(ms int64) (time.Duration, error) {
	switch {
	case ms == 0:
		return defaultNetTimeout, nil
	case ms < 0 || time.Duration(ms)*time.Millisecond > maxNetTimeout:
		return 0, ipc.Errorf(ipc.CodeInvalid, "timeout must be 1..%d ms", maxNetTimeout.Milliseconds())
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// endpoint is a URL host as the broker authorises it.
type endpoint struct {
	name string     // canonical host: lower-case name, or the address's own spelling
	ip   netip.Addr // set when the host is an address
}

// parseHost canonicalises a URL or probe host.
func parseHost(h string) (endpoint, error) {
	ip, isIP, err := host.ParseIP(h)
	if err != nil {
		return endpoint{}, err
	}
	if isIP {
		return endpoint{name: ip.String(), ip: ip}, nil
	}
	name := strings.TrimSuffix(strings.ToLower(h), ".")
	if name == "" || len(name) > 253 {
		return endpoint{}, ipc.Errorf(ipc.CodeInvalid, "invalid host %q", h)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_') {
			return endpoint{}, ipc.Errorf(ipc.CodeInvalid, "invalid host %q", h)
		}
	}
	return endpoint{name: name}, nil
}

// urlHost writes a host (and an explicit port) back into URL form.
func urlHost(name string, port string) string {
	if strings.Contains(name, ":") {
		name = "[" + name + "]"
	}
	if port == "" {
		return name
	}
	return name + ":" + port
}

// resolveChecked returns the address to connect to for e: the address
// itself, or the first address the name resolves to. A non-public result
// of a name is authorised again as resourceFor(address).
func (s *session) resolveChecked(ctx context.Context, a authz.Action, e endpoint, resourceFor func(host string) authz.Resource) (netip.Addr, error) {
	if e.ip.IsValid() {
		return e.ip, nil
	}
	addrs, err := host.Resolve(ctx, host.Resolver(s.run.dnsServer), e.name)
	if err != nil {
		return netip.Addr{}, err
	}
	ip := addrs[0]
	if host.Special(ip) {
		if err := s.authorize(a, resourceFor(ip.String()), nil); err != nil {
			return netip.Addr{}, err
		}
	}
	return ip, nil
}

// checkURL canonicalises raw, authorises GET on it, resolves it and
// returns the URL to request and the one address to connect to.
func (s *session) checkURL(ctx context.Context, raw string) (*url.URL, netip.AddrPort, error) {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() {
		return nil, netip.AddrPort{}, ipc.Errorf(ipc.CodeInvalid, "invalid URL %q", raw)
	}
	u.Scheme = strings.ToLower(u.Scheme)
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, netip.AddrPort{}, ipc.Errorf(ipc.CodeInvalid, "unsupported URL scheme %q: only http and https", u.Scheme)
	}
	if u.User != nil {
		return nil, netip.AddrPort{}, ipc.Errorf(ipc.CodeInvalid, "URLs with credentials are not supported; pass an Authorization header")
	}
	if u.Host == "" {
		return nil, netip.AddrPort{}, ipc.Errorf(ipc.CodeInvalid, "invalid URL %q: no host", raw)
	}
	port, err := host.URLPort(u)
	if err != nil {
		return nil, netip.AddrPort{}, ipc.Errorf(ipc.CodeInvalid, "invalid URL %q: %v", raw, err)
	}
	e, err := parseHost(u.Hostname())
	if err != nil {
		return nil, netip.AddrPort{}, err
	}
	u.Host = urlHost(e.name, u.Port())
	u.Fragment, u.RawFragment = "", ""
	if u.Path == "" {
		u.Path = "/"
	}
	if err := s.authorize(actNetGet, authz.URLResource(u.String()), nil); err != nil {
		return nil, netip.AddrPort{}, err
	}
	ip, err := s.resolveChecked(ctx, actNetGet, e, func(h string) authz.Resource {
		v := *u
		v.Host = urlHost(h, u.Port())
		return authz.URLResource(v.String())
	})
	if err != nil {
		return nil, netip.AddrPort{}, err
	}
	return u, netip.AddrPortFrom(ip, uint16(port)), nil
}

// forbiddenHeaders are request headers a script may not set: Host would
// reach another virtual host on the authorised address than the one the
// policy named; the others belong to the transport.
var forbiddenHeaders = []string{"host", "connection", "content-length", "transfer-encoding", "te", "upgrade", "proxy-authorization", "proxy-connection"}

// credentialHeaders are dropped when a redirect leaves the original host.
var credentialHeaders = []string{"authorization", "cookie"}

func (s *session) opNetGet(body []byte) (any, *os.File, error) {
	var req ipc.NetGetReq
	if err := ipc.Unmarshal(body, &req); err != nil {
		return nil, nil, badRequest(err)
	}
	timeout, err := netTimeout(req.TimeoutMs)
	if err != nil {
		return nil, nil, err
	}
	maxBytes := req.MaxBytes
	if maxBytes == 0 {
		maxBytes = ipc.MaxNetBody
	}
	if maxBytes < 0 || maxBytes > ipc.MaxNetBody {
		return nil, nil, ipc.Errorf(ipc.CodeInvalid, "max_bytes must be 1..%d", ipc.MaxNetBody)
	}
	hdrs := make(map[string]string, len(req.Headers))
	for k, v := range req.Headers {
		lk := strings.ToLower(k)
		for _, f := range forbiddenHeaders {
			if lk == f {
				return nil, nil, ipc.Errorf(ipc.CodeInvalid, "header %q may not be set", k)
			}
		}
		if strings.ContainsAny(k+v, "\r\n\x00") {
			return nil, nil, ipc.Errorf(ipc.CodeInvalid, "invalid header %q", k)
		}
		hdrs[lk] = v
	}
	// One deadline for everything: resolution, every hop, every byte.
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	raw := req.URL
	var first string
	for hop := 0; ; hop++ {
		if hop > maxRedirects {
			return nil, nil, ipc.Errorf(ipc.CodeLimit, "%s: more than %d redirects", req.URL, maxRedirects)
		}
		u, addr, err := s.checkURL(ctx, raw)
		if err != nil {
			return nil, nil, host.NetError(raw, err)
		}
		if hop == 0 {
			first = u.Hostname()
		} else if u.Hostname() != first {
			for _, h := range credentialHeaders {
				delete(hdrs, h)
			}
		}
		res, err := host.Get(ctx, host.Hop{URL: u, Addr: addr, Headers: hdrs, MaxBytes: maxBytes})
		if err != nil {
			return nil, nil, host.NetError(u.String(), err)
		}
		if res.Location == nil {
			return &ipc.NetGetResp{Status: res.Status, Headers: res.Headers, Body: res.Body, URL: u.String()}, nil, nil
		}
		raw = res.Location.String()
	}
}

func (s *session) opNetConnect(body []byte) (any, *os.File, error) {
	var req ipc.NetConnectReq
	if err := ipc.Unmarshal(body, &req); err != nil {
		return nil, nil, badRequest(err)
	}
	timeout, err := netTimeout(req.TimeoutMs)
	if err != nil {
		return nil, nil, err
	}
	if req.Port < 1 || req.Port > 65535 {
		return nil, nil, ipc.Errorf(ipc.CodeInvalid, "invalid port %d", req.Port)
	}
	e, err := parseHost(req.Host)
	if err != nil {
		return nil, nil, err
	}
	res := func(h string) authz.Resource {
		return authz.URLResource("tcp://" + urlHost(h, strconv.Itoa(req.Port)))
	}
	if err := s.authorize(actNetConnect, res(e.name), nil); err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	target := net.JoinHostPort(req.Host, strconv.Itoa(req.Port))
	ip, err := s.resolveChecked(ctx, actNetConnect, e, res)
	if err != nil {
		return nil, nil, host.NetError(target, err)
	}
	addr := netip.AddrPortFrom(ip, uint16(req.Port))
	start := time.Now()
	c, err := host.Dial(ctx, addr)
	if err != nil {
		return nil, nil, host.NetError(target, err)
	}
	c.Close()
	return &ipc.NetConnectResp{Address: addr.String(), Ms: time.Since(start).Milliseconds()}, nil, nil
}

func (s *session) opNetResolve(body []byte) (any, *os.File, error) {
	var req ipc.HostReq
	if err := ipc.Unmarshal(body, &req); err != nil {
		return nil, nil, badRequest(err)
	}
	e, err := parseHost(req.Host)
	if err != nil {
		return nil, nil, err
	}
	if err := s.authorize(actResolve, authz.HostnameResource(e.name), nil); err != nil {
		return nil, nil, err
	}
	if e.ip.IsValid() {
		return &ipc.NetResolveResp{Addrs: []string{e.ip.String()}}, nil, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), defaultNetTimeout)
	defer cancel()
	addrs, err := host.Resolve(ctx, host.Resolver(s.run.dnsServer), e.name)
	if err != nil {
		return nil, nil, err
	}
	resp := &ipc.NetResolveResp{Addrs: make([]string, len(addrs))}
	for i, a := range addrs {
		resp.Addrs[i] = a.String()
	}
	return resp, nil, nil
}

func (s *session) opNetInterfaces(body []byte) (any, *os.File, error) {
	var req ipc.Empty
	if err := ipc.Unmarshal(body, &req); err != nil {
		return nil, nil, badRequest(err)
	}
	if err := s.authorize(actSysinfoList, resSysinfo, nil); err != nil {
		return nil, nil, err
	}
	ifs, err := host.Interfaces()
	if err != nil {
		return nil, nil, err
	}
	resp := &ipc.NetInterfacesResp{Interfaces: []ipc.NetInterface{}}
	for _, i := range ifs {
		if len(resp.Interfaces) == ipc.MaxListEntries {
			break
		}
		resp.Interfaces = append(resp.Interfaces, ipc.NetInterface{
			Name: i.Name, Index: i.Index, MTU: i.MTU, MAC: i.MAC, Flags: i.Flags, Addrs: i.Addrs,
		})
	}
	return resp, nil, nil
}

func (s *session) opNetConnections(body []byte) (any, *os.File, error) {
	var req ipc.Empty
	if err := ipc.Unmarshal(body, &req); err != nil {
		return nil, nil, badRequest(err)
	}
	if err := s.authorize(actSysinfoList, resSysinfo, nil); err != nil {
		return nil, nil, err
	}
	cs, trunc, err := host.Connections(ipc.MaxListEntries)
	if err != nil {
		return nil, nil, err
	}
	resp := &ipc.NetConnectionsResp{Conns: make([]ipc.NetConn, len(cs)), Truncated: trunc}
	for i, c := range cs {
		resp.Conns[i] = ipc.NetConn{Proto: c.Proto, Local: c.Local, Remote: c.Remote, State: c.State, UID: c.UID, Inode: c.Inode}
	}
	return resp, nil, nil
}
