package host

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rex-sh/rex/ipc"
)

// ParseIP reads host as an IP address the way the C library and browsers
// would, so that no spelling of an address can pass for a name: IPv6 with
// or without brackets, IPv4-mapped IPv6 (unmapped), and IPv4 in inet_aton's
// forms — 1 to 4 parts, each decimal, octal (leading 0) or hex (0x), such as
// 2130706433, 0x7f.1 or 017700000001. ok is false for a name. A zone
// (fe80::1%eth0) is not an address a policy can name: it is refused as
// invalid.
func ParseIP(host string) (ip netip.Addr, ok bool, err error) {
	h := strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.Contains(h, ":") {
		a, perr := netip.ParseAddr(h)
		if perr != nil || a.Zone() != "" {
			return netip.Addr{}, false, ipc.Errorf(ipc.CodeInvalid, "invalid address %q", host)
		}
		return a.Unmap(), true, nil
	}
	if a, ok := parseInetAton(strings.TrimSuffix(h, ".")); ok {
		return a, true, nil
	}
	return netip.Addr{}, false, nil
}

// parseInetAton is inet_aton(3): a.b.c.d, a.b.c (c is 16 bits), a.b (b is
// 24 bits) and a (32 bits), each part in C integer syntax.
func parseInetAton(s string) (netip.Addr, bool) {
	parts := strings.Split(s, ".")
	if len(parts) == 0 || len(parts) > 4 {
		return netip.Addr{}, false
	}
	vals := make([]uint64, len(parts))
	for i, p := range parts {
		if p == "" {
			return netip.Addr{}, false
		}
		base, digits := 10, p
		switch {
		case strings.HasPrefix(strings.ToLower(p), "0x"):
			base, digits = 16, p[2:]
			if digits == "" {
				digits = "0"
			}
		case len(p) > 1 && p[0] == '0':
			base, digits = 8, p[1:]
		}
		v, err := strconv.ParseUint(digits, base, 32)
		if err != nil {
			return netip.Addr{}, false
		}
		vals[i] = v
	}
	var n uint64
	last := len(vals) - 1
	for i := 0; i < last; i++ {
		if vals[i] > 0xff {
			return netip.Addr{}, false
		}
		n |= vals[i] << (24 - 8*i)
	}
	if vals[last] >= 1<<(32-8*last) {
		return netip.Addr{}, false
	}
	n |= vals[last]
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), true
}

// special are ranges that are not the public Internet: a name that
// resolves into one of them needs the address itself to be allowed.
var special = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
		"192.0.0.0/24", "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/3",
		"::/127", "::ffff:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48", "100::/64", "2002::/16",
		"fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
	} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

// Special says whether ip is loopback, private, link-local, unspecified,
// multicast, reserved, or an IPv6 form that embeds an IPv4 address (mapped,
// NAT64, 6to4): anything a script could use to reach the broker's own
// host or network instead of the Internet.
func Special(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range special {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// HostPort formats ip and port for a URL or a dial.
func HostPort(ip netip.Addr, port int) string {
	return net.JoinHostPort(ip.String(), strconv.Itoa(port))
}

// dialer connects only to the one address it was built for, whatever host
// name the HTTP machinery asks for: the address that was resolved and
// authorised.
func dialer(addr netip.AddrPort) func(ctx context.Context, network, _ string) (net.Conn, error) {
	return func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr.String())
	}
}

// Dial opens a TCP connection to addr, the probe of net.connect.
func Dial(ctx context.Context, addr netip.AddrPort) (net.Conn, error) {
	return dialer(addr)(ctx, "tcp", "")
}

// Hop is one HTTP GET to a URL whose host was authorised and resolved to
// Addr.
type Hop struct {
	URL      *url.URL
	Addr     netip.AddrPort
	Headers  map[string]string
	MaxBytes int64
}

// HopResult is a response; Location is set for a redirect (3xx with a
// Location header), resolved against the request URL.
type HopResult struct {
	Status   int
	Headers  map[string]string
	Body     []byte
	Location *url.URL
}

// ErrBodyTooLarge is returned when a body exceeds the cap.
var ErrBodyTooLarge = errors.New("response body exceeds max_bytes")

// Get does one GET without following redirects, connecting only to h.Addr,
// verifying TLS against the host's CA store with the URL's host name, never
// through a proxy, and without transparent decompression (a compressed body
// counts against MaxBytes as it is). ctx bounds the whole exchange.
func Get(ctx context.Context, h Hop) (*HopResult, error) {
	tr := &http.Transport{
		Proxy:                  nil,
		DialContext:            dialer(h.Addr),
		TLSClientConfig:        &tls.Config{ServerName: h.URL.Hostname(), MinVersion: tls.VersionTLS12},
		DisableCompression:     true,
		DisableKeepAlives:      true,
		MaxResponseHeaderBytes: ipc.MaxNetHeaders,
		TLSHandshakeTimeout:    10 * time.Second,
		ForceAttemptHTTP2:      false,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.URL.String(), nil)
	if err != nil {
		return nil, err
	}
	for k, v := range h.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("User-Agent", "rex")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	res := &HopResult{Status: resp.StatusCode, Headers: map[string]string{}}
	size := 0
	for k, vs := range resp.Header {
		v := strings.Join(vs, ", ")
		size += len(k) + len(v)
		if size > ipc.MaxNetHeaders {
			break
		}
		res.Headers[strings.ToLower(k)] = strings.ToValidUTF8(v, "?")
	}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		if loc := resp.Header.Get("Location"); loc != "" {
			u, err := h.URL.Parse(loc)
			if err != nil {
				return nil, ipc.Errorf(ipc.CodeInvalid, "redirect to an invalid URL %q", loc)
			}
			res.Location = u
			return res, nil
		}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, h.MaxBytes+1))
	if err != nil {
		return nil, err
	}
	if int64(len(body)) > h.MaxBytes {
		return nil, ErrBodyTooLarge
	}
	res.Body = body
	return res, nil
}

// Interface is a network interface of the host.
type Interface struct {
	Name         string
	Index, MTU   int
	MAC          string
	Flags, Addrs []string
}

// Interfaces lists the host's interfaces with their addresses.
func Interfaces() ([]Interface, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	out := make([]Interface, 0, len(ifs))
	for _, i := range ifs {
		e := Interface{Name: i.Name, Index: i.Index, MTU: i.MTU, MAC: i.HardwareAddr.String(), Flags: []string{}, Addrs: []string{}}
		for _, f := range strings.Split(i.Flags.String(), "|") {
			if f != "0" && f != "" {
				e.Flags = append(e.Flags, f)
			}
		}
		if as, err := i.Addrs(); err == nil {
			for _, a := range as {
				e.Addrs = append(e.Addrs, a.String())
			}
		}
		out = append(out, e)
	}
	return out, nil
}

// Conn is one socket of /proc/net/{tcp,tcp6,udp,udp6}.
type Conn struct {
	Proto, Local, Remote, State string
	UID                         int
	Inode                       uint64
}

var tcpStates = map[string]string{
	"01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1", "05": "FIN_WAIT2",
	"06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT", "09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING",
}

// Connections reads the host's TCP and UDP sockets (of the broker's
// network namespace), at most max; trunc says there were more.
func Connections(max int) (out []Conn, trunc bool, err error) {
	for _, proto := range []string{"tcp", "tcp6", "udp", "udp6"} {
		b, err := os.ReadFile("/proc/net/" + proto)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // no IPv6
			}
			return nil, false, err
		}
		lines := strings.Split(string(b), "\n")
		for _, line := range lines[1:] {
			f := strings.Fields(line)
			if len(f) < 10 {
				continue
			}
			if len(out) == max {
				return out, true, nil
			}
			c := Conn{Proto: proto, Local: procAddr(f[1]), Remote: procAddr(f[2]), State: tcpStates[f[3]]}
			if strings.HasPrefix(proto, "udp") {
				c.State = ""
			}
			c.UID, _ = strconv.Atoi(f[7])
			c.Inode, _ = strconv.ParseUint(f[9], 10, 64)
			out = append(out, c)
		}
	}
	return out, false, nil
}

// procAddr decodes "0100007F:0050" (host-order 32-bit words) to
// "127.0.0.1:80".
func procAddr(s string) string {
	h, p, ok := strings.Cut(s, ":")
	if !ok {
		return s
	}
	raw, err := hex.DecodeString(h)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return s
	}
	for i := 0; i < len(raw); i += 4 {
		raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	port, _ := strconv.ParseUint(p, 16, 16)
	ip, _ := netip.AddrFromSlice(raw)
	return netip.AddrPortFrom(ip.Unmap(), uint16(port)).String()
}

// Resolver returns the resolver the broker uses: the system's, or with
// server ("host:port") one that asks only that DNS server, for tests and
// split-horizon set-ups.
func Resolver(server string) *net.Resolver {
	if server == "" {
		return net.DefaultResolver
	}
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, server)
	}}
}

// Resolve looks host up once and returns its addresses, unmapped, IPv4
// first.
func Resolve(ctx context.Context, r *net.Resolver, host string) ([]netip.Addr, error) {
	as, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		var de *net.DNSError
		if errors.As(err, &de) && de.IsNotFound {
			return nil, ipc.Errorf(ipc.CodeNotFound, "%s: no such host", host)
		}
		if errors.As(err, &de) && de.IsTimeout {
			return nil, ipc.Errorf(ipc.CodeTimeout, "%s: name resolution timed out", host)
		}
		return nil, ipc.Errorf(ipc.CodeIO, "%s: name resolution failed", host)
	}
	out := make([]netip.Addr, 0, len(as))
	for _, a := range as {
		if a.Unmap().Is4() {
			out = append(out, a.Unmap())
		}
	}
	for _, a := range as {
		if !a.Unmap().Is4() {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return nil, ipc.Errorf(ipc.CodeNotFound, "%s: no such host", host)
	}
	return out, nil
}

// NetError maps a network error to the script-facing error: timeouts are
// CodeTimeout; the message names target (what the script asked for), not
// the host's error text.
func NetError(target string, err error) error {
	var e *ipc.Error
	switch {
	case errors.As(err, &e):
		return e
	case errors.Is(err, ErrBodyTooLarge):
		return ipc.Errorf(ipc.CodeLimit, "%s: %v", target, err)
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		return ipc.Errorf(ipc.CodeTimeout, "%s: timed out", target)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var ce *tls.CertificateVerificationError
	if errors.As(err, &ce) {
		return ipc.Errorf(ipc.CodeIO, "%s: TLS certificate verification failed", target)
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return ipc.Errorf(ipc.CodeIO, "%s: %s failed: %v", target, oe.Op, oe.Err)
	}
	return ipc.Errorf(ipc.CodeIO, "%s: request failed", target)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// URLPort is the port a URL connects to: explicit, else 80 for http and
// 443 for https.
func URLPort(u *url.URL) (int, error) {
	p := u.Port()
	if p == "" {
		switch u.Scheme {
		case "http":
			return 80, nil
		case "https":
			return 443, nil
		}
		return 0, fmt.Errorf("no port")
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("bad port %q", p)
	}
	return int(n), nil
}
