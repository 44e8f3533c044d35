package e2e

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rex-sh/rex/broker/host"
)

// Network tests (N01–N03 of SECURITY-TESTS.md). Everything they contact is
// on loopback: HTTP servers on 127.0.0.x and a DNS responder on 127.0.0.1
// that standalone rex-exec asks through REX_DNS_SERVER.

// dnsResponder answers A queries from answer(name, n), n counting the A
// queries for that name from 1; an empty answer is NXDOMAIN. Other query
// types get an empty NOERROR answer.
type dnsResponder struct {
	conn   *net.UDPConn
	answer func(name string, n int) string
	mu     sync.Mutex
	counts map[string]int
}

func startDNS(t *testing.T, answer func(name string, n int) string) *dnsResponder {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	must(t, err)
	d := &dnsResponder{conn: c, answer: answer, counts: map[string]int{}}
	t.Cleanup(func() { c.Close() })
	go d.serve()
	return d
}

func (d *dnsResponder) addr() string { return d.conn.LocalAddr().String() }

func (d *dnsResponder) queries(name string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.counts[name]
}

func (d *dnsResponder) serve() {
	buf := make([]byte, 1500)
	for {
		n, from, err := d.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		if resp := d.reply(buf[:n]); resp != nil {
			_, _ = d.conn.WriteToUDP(resp, from)
		}
	}
}

func (d *dnsResponder) reply(q []byte) []byte {
	if len(q) < 12 {
		return nil
	}
	i := 12
	var labels []string
	for i < len(q) && q[i] != 0 {
		l := int(q[i])
		if l > 63 || i+1+l > len(q) {
			return nil
		}
		labels = append(labels, string(q[i+1:i+1+l]))
		i += 1 + l
	}
	if i+5 > len(q) {
		return nil
	}
	qtype := binary.BigEndian.Uint16(q[i+1:])
	qend := i + 5
	name := strings.ToLower(strings.Join(labels, "."))
	var ip net.IP
	flags := uint16(0x8180) // response, recursion desired and available, NOERROR
	if qtype == 1 {
		d.mu.Lock()
		d.counts[name]++
		n := d.counts[name]
		d.mu.Unlock()
		if a := d.answer(name, n); a != "" {
			ip = net.ParseIP(a).To4()
		} else {
			flags |= 3 // NXDOMAIN
		}
	}
	var b bytes.Buffer
	b.Write(q[0:2])
	_ = binary.Write(&b, binary.BigEndian, []uint16{flags, 1, uint16(len(ip) / 4), 0, 0})
	b.Write(q[12:qend])
	if ip != nil {
		_ = binary.Write(&b, binary.BigEndian, []uint16{0xc00c, 1, 1, 0, 0, 4})
		b.Write(ip)
	}
	return b.Bytes()
}

// hitServer is an HTTP server on one loopback address that counts requests.
type hitServer struct {
	srv  *http.Server
	ln   net.Listener
	hits atomic.Int64
}

func startHTTP(t *testing.T, addr string, h http.HandlerFunc) *hitServer {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	must(t, err)
	s := &hitServer{ln: ln}
	s.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		h(w, r)
	})}
	go func() { _ = s.srv.Serve(ln) }()
	t.Cleanup(func() { s.srv.Close() })
	return s
}

func (s *hitServer) port() int { return s.ln.Addr().(*net.TCPAddr).Port }

// netRun runs script standalone under policy with the test DNS responder.
func netRun(t *testing.T, dns *dnsResponder, policy, script string, extra ...string) outcome {
	t.Helper()
	p := filepath.Join(t.TempDir(), "net.cedar")
	must(t, os.WriteFile(p, []byte(policy), 0o644))
	var env []string
	if dns != nil {
		env = append(env, "REX_DNS_SERVER="+dns.addr())
	}
	return rexExec(t, script, env, append([]string{"--policy", p, "--output", "json"}, extra...)...)
}

const onlyAPIPolicy = `
@id("api-only")
permit(principal, action == network::Action::"GET", resource) when { resource has host && resource.host == "api.example.com" };
@id("api-only-connect")
permit(principal, action == network::Action::"connect", resource) when { resource has host && resource.host == "api.example.com" };
`

// TestN01_SSRFEncodings: with only api.example.com granted, no spelling of
// a loopback, private, link-local or unspecified address is reached, and
// neither is the name when DNS answers 127.0.0.1.
func TestN01_SSRFEncodings(t *testing.T) {
	requireSandbox(t)
	srv := startHTTP(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "internal") })
	dns := startDNS(t, func(name string, n int) string {
		if name == "api.example.com" || name == "localhost" {
			return "127.0.0.1"
		}
		return ""
	})
	p := strconv.Itoa(srv.port())
	urls := []string{
		"http://127.0.0.1:" + p + "/", "http://localhost:" + p + "/", "http://LOCALHOST.:" + p + "/",
		"http://[::1]:" + p + "/", "http://0.0.0.0:" + p + "/", "http://169.254.169.254/latest/meta-data/",
		"http://[::ffff:127.0.0.1]:" + p + "/", "http://[::ffff:7f00:1]:" + p + "/", "http://2130706433:" + p + "/",
		"http://0x7f.1:" + p + "/", "http://017700000001:" + p + "/", "http://0x7f000001:" + p + "/",
		"http://127.1:" + p + "/", "http://%31%32%37.0.0.1:" + p + "/", "http://[fd00::1]:" + p + "/",
		"http://10.0.0.1:" + p + "/", "http://api.example.com:" + p + "/",
	}
	list, _ := json.Marshal(urls)
	script := `out := []
for _, u := range ` + string(list) + ` {
    out.append(try(func() { net.get(u, {timeout: 2000}); return "REACHED " + u }, func(e) { return e.message() }))
}
out.append(try(func() { net.connect("api.example.com", ` + p + `); return "REACHED connect" }, func(e) { return e.message() }))
out.append(try(func() { net.connect("0x7f.0.0.1", ` + p + `); return "REACHED connect literal" }, func(e) { return e.message() }))
out`
	o := netRun(t, dns, onlyAPIPolicy, script)
	wantStatus(t, o, "SUCCESS", "", 0)
	var msgs []string
	must(t, json.Unmarshal(o.res.Output, &msgs))
	if len(msgs) != len(urls)+2 {
		t.Fatalf("got %d results for %d requests: %s", len(msgs), len(urls)+2, o.raw)
	}
	refused := 0
	for i, m := range msgs {
		switch {
		case strings.HasPrefix(m, "Permission denied"):
		case strings.HasPrefix(m, "invalid URL") && strings.Contains(m, "%31"):
			refused++ // Go's URL parser refuses an escaped address outright
		default:
			t.Errorf("request %d: %s, want a denial", i, m)
		}
	}
	if len(o.res.Denials) != len(msgs)-refused {
		t.Errorf("%d denials for %d requests", len(o.res.Denials), len(msgs)-refused)
	}
	// Every denial names the address, in its one canonical spelling.
	for _, d := range o.res.Denials {
		if strings.Contains(d.Resource, "0x") || strings.Contains(d.Resource, "2130706433") || strings.Contains(d.Resource, "::ffff") {
			t.Errorf("denial names a non-canonical spelling: %s", d.Resource)
		}
	}
	if n := srv.hits.Load(); n != 0 {
		t.Fatalf("the internal server was reached %d times", n)
	}
}

const loopbackPolicy = `
@id("loopback-1")
permit(principal, action == network::Action::"GET", resource) when { resource has host && resource.host == "127.0.0.1" };
@id("rebind-name")
permit(principal, action == network::Action::"GET", resource) when { resource has host && (resource.host == "rebind.test" || resource.host == "127.0.0.2") };
@id("probe")
permit(principal, action == network::Action::"connect", resource) when { resource has host && resource.host == "127.0.0.1" };
`

// TestNetGetAllowed: an allowed URL is fetched with status, headers and
// body; an allowed redirect on the same host is followed; connect probes.
func TestNetGetAllowed(t *testing.T) {
	requireSandbox(t)
	srv := startHTTP(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/hop":
			http.Redirect(w, r, "/final?x=1", http.StatusFound)
		default:
			w.Header().Set("X-Test", r.Header.Get("X-Req"))
			fmt.Fprintf(w, "hello %s", r.URL.Path)
		}
	})
	base := "http://127.0.0.1:" + strconv.Itoa(srv.port())
	o := netRun(t, nil, loopbackPolicy, `r := net.get("`+base+`/a", {headers: {"X-Req": "v"}})
h := net.get("`+base+`/hop")
c := net.connect("127.0.0.1", `+strconv.Itoa(srv.port())+`)
{"status": r.status, "body": r.body, "x": r.headers["x-test"], "hop": h.body, "hop_url": h.url, "probe": c.address}`)
	wantStatus(t, o, "SUCCESS", "", 0)
	var got map[string]any
	must(t, json.Unmarshal(o.res.Output, &got))
	want := map[string]any{"status": 200.0, "body": "hello /a", "x": "v", "hop": "hello /final",
		"hop_url": base + "/final?x=1", "probe": "127.0.0.1:" + strconv.Itoa(srv.port())}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}

// TestN02_RedirectsAndRebinding: a redirect to a forbidden host is denied
// before anything connects to it; file: and gopher: are refused; a name
// whose second DNS answer is 127.0.0.1 is connected to the first answer
// only.
func TestN02_RedirectsAndRebinding(t *testing.T) {
	requireSandbox(t)
	evil := startHTTP(t, "127.0.0.3:0", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "evil") })
	evilURL := "http://127.0.0.3:" + strconv.Itoa(evil.port()) + "/"
	srv := startHTTP(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/evil":
			http.Redirect(w, r, evilURL, http.StatusFound)
		case "/file":
			w.Header().Set("Location", "file:///etc/passwd")
			w.WriteHeader(http.StatusMovedPermanently)
		case "/gopher":
			w.Header().Set("Location", "gopher://127.0.0.1:70/_x")
			w.WriteHeader(http.StatusTemporaryRedirect)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		}
	})
	base := "http://127.0.0.1:" + strconv.Itoa(srv.port())
	o := netRun(t, nil, loopbackPolicy, `out := []
for _, p := range ["/evil", "/file", "/gopher", "/loop"] {
    out.append(try(func() { net.get("`+base+`" + p); return "FOLLOWED " + p }, func(e) { return e.message() }))
}
out`)
	wantStatus(t, o, "SUCCESS", "", 0)
	var msgs []string
	must(t, json.Unmarshal(o.res.Output, &msgs))
	wants := []string{"Permission denied", `unsupported URL scheme "file"`, `unsupported URL scheme "gopher"`, "more than 10 redirects"}
	for i, w := range wants {
		if i >= len(msgs) || !strings.Contains(msgs[i], w) {
			t.Errorf("result %d = %q, want it to contain %q (all: %s)", i, msgs, w, o.raw)
		}
	}
	if len(o.res.Denials) != 1 || o.res.Denials[0].Resource != `network::url::"`+evilURL+`"` {
		t.Errorf("denials = %+v, want one for %s", o.res.Denials, evilURL)
	}
	if n := evil.hits.Load(); n != 0 {
		t.Fatalf("the forbidden host was reached %d times", n)
	}

	// DNS rebinding: rebind.test answers 127.0.0.2 (allowed), then
	// 127.0.0.1. A server listens on the same port on both addresses; the
	// broker must resolve once and connect to what it checked.
	good := startHTTP(t, "127.0.0.2:0", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "good") })
	bad := startHTTP(t, "127.0.0.1:"+strconv.Itoa(good.port()), func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "rebound") })
	dns := startDNS(t, func(name string, n int) string {
		if name != "rebind.test" {
			return ""
		}
		if n == 1 {
			return "127.0.0.2"
		}
		return "127.0.0.1"
	})
	o = netRun(t, dns, loopbackPolicy, `net.get("http://rebind.test:`+strconv.Itoa(good.port())+`/").body`)
	wantStatus(t, o, "SUCCESS", "", 0)
	if string(o.res.Output) != `"good"` || bad.hits.Load() != 0 {
		t.Fatalf("output %s, rebound server hits %d", o.res.Output, bad.hits.Load())
	}
	if n := dns.queries("rebind.test"); n != 1 {
		t.Errorf("rebind.test was resolved %d times, want once", n)
	}
}

// TestN03_ResponseBombs: a huge body hits the size cap, a gzip bomb comes
// back compressed (never inflated), a drip hits the total deadline, and a
// flood of headers is refused; each quickly.
func TestN03_ResponseBombs(t *testing.T) {
	requireSandbox(t)
	var bomb bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&bomb, gzip.BestCompression)
	_, _ = zw.Write(make([]byte, 16<<20))
	_ = zw.Close()
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	srv := startHTTP(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/huge": // 10 GB announced, streamed until the client hangs up
			w.Header().Set("Content-Length", strconv.FormatInt(10<<30, 10))
			chunk := make([]byte, 64<<10)
			for i := 0; i < 10<<30/len(chunk); i++ {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		case "/gzip":
			w.Header().Set("Content-Encoding", "gzip")
			_, _ = w.Write(bomb.Bytes())
		case "/drip":
			f := w.(http.Flusher)
			for {
				_, _ = w.Write([]byte("x"))
				f.Flush()
				select {
				case <-stop:
					return
				case <-r.Context().Done():
					return
				case <-time.After(10 * time.Second):
				}
			}
		case "/headers":
			for i := 0; i < 100000; i++ {
				w.Header().Set("X-H"+strconv.Itoa(i), "v")
			}
		}
	})
	base := "http://127.0.0.1:" + strconv.Itoa(srv.port())
	cases := []struct {
		path, script, errType string
		within                time.Duration
	}{
		{"/huge", `net.get("` + base + `/huge")`, "RESOURCE_LIMIT_EXCEPTION", 10 * time.Second},
		{"/gzip", `r := net.get("` + base + `/gzip", {headers: {"Accept-Encoding": "gzip"}}); len(r.body) < 65536 && r.headers["content-encoding"] == "gzip"`, "", 10 * time.Second},
		{"/drip", `net.get("` + base + `/drip", {timeout: 1500})`, "TIMEOUT_EXCEPTION", 8 * time.Second},
		{"/headers", `net.get("` + base + `/headers")`, "SCRIPT_EXCEPTION", 10 * time.Second},
	}
	for _, c := range cases {
		t.Run(strings.TrimPrefix(c.path, "/"), func(t *testing.T) {
			o := netRun(t, nil, loopbackPolicy, c.script)
			if c.errType == "" {
				wantStatus(t, o, "SUCCESS", "", 0)
				if string(o.res.Output) != "true" {
					t.Fatalf("output %s: the bomb was inflated or mangled", o.res.Output)
				}
			} else {
				wantStatus(t, o, "ERROR", c.errType, exitFor("ERROR", c.errType))
			}
			if o.took > c.within {
				t.Errorf("took %v, want under %v", o.took, c.within)
			}
		})
	}
}

// fakeSystemd owns org.freedesktop.systemd1 on a private dbus-daemon and
// answers the Manager methods the broker uses, recording each call. Known
// units are active and running; others are NoSuchUnit.
type fakeSystemd struct {
	sock  string
	mu    sync.Mutex
	calls []string
}

func startFakeSystemd(t *testing.T, units ...string) *fakeSystemd {
	t.Helper()
	bin, err := exec.LookPath("dbus-daemon")
	if err != nil {
		t.Fatalf("dbus-daemon not installed (apt-get install dbus-daemon): %v", err)
	}
	dir := t.TempDir()
	f := &fakeSystemd{sock: filepath.Join(dir, "bus")}
	conf := filepath.Join(dir, "bus.conf")
	must(t, os.WriteFile(conf, []byte(`<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>system</type><listen>unix:path=`+f.sock+`</listen><auth>EXTERNAL</auth>
<policy context="default"><allow user="*"/><allow own="*"/><allow send_destination="*"/><allow receive_sender="*"/></policy>
</busconfig>`), 0o644))
	cmd := exec.Command(bin, "--config-file="+conf, "--nofork", "--nopidfile", "--print-address")
	out, err := cmd.StdoutPipe()
	must(t, err)
	must(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if _, err := bufio.NewReader(out).ReadString('\n'); err != nil {
		t.Fatalf("dbus-daemon: %v", err)
	}
	bus, err := host.DialBus(f.sock)
	must(t, err)
	t.Cleanup(func() { bus.Close() })
	if r, err := bus.Call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "RequestName", "su", "org.freedesktop.systemd1", uint32(4)); err != nil || r[0] != uint32(1) {
		t.Fatalf("RequestName: %v %v", r, err)
	}
	known := map[string]bool{}
	for _, u := range units {
		known[u] = true
	}
	go func() {
		jobs := 0
		for {
			m, err := bus.Read()
			if err != nil {
				return
			}
			if m.Type != host.DBusMethodCall {
				continue
			}
			f.mu.Lock()
			f.calls = append(f.calls, fmt.Sprint(m.Member, m.Body))
			f.mu.Unlock()
			reply := &host.DBusMessage{Type: host.DBusMethodReturn, ReplySerial: m.Serial, Destination: m.Sender}
			unit, _ := func() (string, bool) {
				if len(m.Body) > 0 {
					s, ok := m.Body[0].(string)
					return s, ok
				}
				return "", false
			}()
			switch m.Member {
			case "LoadUnit", "StartUnit", "StopUnit", "RestartUnit":
				if !known[unit] {
					reply = &host.DBusMessage{Type: host.DBusError, ReplySerial: m.Serial, Destination: m.Sender,
						ErrorName: "org.freedesktop.systemd1.NoSuchUnit", Signature: "s", Body: []any{"Unit " + unit + " not found."}}
				} else if m.Member == "LoadUnit" {
					reply.Signature, reply.Body = "o", []any{host.ObjectPath("/org/freedesktop/systemd1/unit/u")}
				} else {
					jobs++
					reply.Signature, reply.Body = "o", []any{host.ObjectPath("/org/freedesktop/systemd1/job/" + strconv.Itoa(jobs))}
				}
			case "Get":
				val := map[string]string{"Description": "Test unit", "LoadState": "loaded", "ActiveState": "active", "SubState": "running"}[m.Body[1].(string)]
				reply.Signature, reply.Body = "v", []any{host.Variant{Sig: "s", Value: val}}
			case "Reload":
			default:
				reply = &host.DBusMessage{Type: host.DBusError, ReplySerial: m.Serial, Destination: m.Sender,
					ErrorName: "org.freedesktop.DBus.Error.UnknownMethod", Signature: "s", Body: []any{m.Member}}
			}
			_ = bus.Send(reply)
		}
	}()
	return f
}

func (f *fakeSystemd) callList() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.calls, "; ")
}

const svcPolicy = `
@id("web-ops")
permit(principal, action in [systemd::Action::"status", systemd::Action::"start", systemd::Action::"stop", systemd::Action::"restart"],
       resource == systemd::Service::"web.service");
@id("status-any")
permit(principal, action == systemd::Action::"status", resource);
@id("reload")
permit(principal, action == systemd::Action::"daemon_reload", resource);
`

// TestSvcThroughDBus: svc functions reach systemd's Manager API on a real
// dbus-daemon (a fake manager owns the name), each under its Cedar check.
func TestSvcThroughDBus(t *testing.T) {
	requireSandbox(t)
	sd := startFakeSystemd(t, "web.service", "db.service")
	p := filepath.Join(t.TempDir(), "svc.cedar")
	must(t, os.WriteFile(p, []byte(svcPolicy), 0o644))
	env := []string{"DBUS_SYSTEM_BUS_ADDRESS=unix:path=" + sd.sock}
	// One statement per call: Risor does not fix the evaluation order of a
	// map literal's values, and the fake manager numbers jobs in order.
	o := rexExec(t, `st := svc.status("web")
start := svc.start("web.service").job
stop := svc.stop("web").job
restart := svc.restart("web").job
out := {"status": st, "start": start, "stop": stop, "restart": restart}
svc.daemon_reload()
out["db"] = svc.status("db.service").active_state
out["db_restart"] = try(func() { svc.restart("db.service"); return "restarted" }, func(e) { return e.message() })
out["missing"] = try(func() { svc.status("nope.service"); return "found" }, func(e) { return e.message() })
out["bad"] = try(func() { svc.status("../etc/x"); return "found" }, func(e) { return e.message() })
out`, env, "--policy", p, "--output", "json")
	wantStatus(t, o, "SUCCESS", "", 0)
	var got map[string]any
	must(t, json.Unmarshal(o.res.Output, &got))
	st, _ := got["status"].(map[string]any)
	if st["unit"] != "web.service" || st["active_state"] != "active" || st["sub_state"] != "running" || st["load_state"] != "loaded" || st["description"] != "Test unit" {
		t.Errorf("status = %v", got["status"])
	}
	for i, k := range []string{"start", "stop", "restart"} {
		if want := "/org/freedesktop/systemd1/job/" + strconv.Itoa(i+1); got[k] != want {
			t.Errorf("%s job = %v, want %s", k, got[k], want)
		}
	}
	if got["db"] != "active" {
		t.Errorf("db = %v", got["db"])
	}
	if s, _ := got["db_restart"].(string); !strings.HasPrefix(s, `Permission denied`) || !strings.Contains(s, `systemd::Service::"db.service"`) {
		t.Errorf("db_restart = %v, want a denial", got["db_restart"])
	}
	if s, _ := got["missing"].(string); !strings.Contains(s, "NoSuchUnit") {
		t.Errorf("missing = %v", got["missing"])
	}
	if s, _ := got["bad"].(string); !strings.Contains(s, "invalid unit name") {
		t.Errorf("bad = %v", got["bad"])
	}
	calls := sd.callList()
	for _, want := range []string{"StartUnit[web.service replace]", "StopUnit[web.service replace]", "RestartUnit[web.service replace]", "Reload[]"} {
		if !strings.Contains(calls, want) {
			t.Errorf("systemd did not get %s; got %s", want, calls)
		}
	}
	if strings.Contains(calls, "RestartUnit[db.service") {
		t.Error("a denied restart reached systemd")
	}
}

// TestSvcRealSystemd runs against the host's systemd when REX_TEST_SYSTEMD=1
// (opt-in: it needs systemd as init and reads the status of a unit that
// exists on any systemd host).
func TestSvcRealSystemd(t *testing.T) {
	if os.Getenv("REX_TEST_SYSTEMD") != "1" {
		t.Skip("opt-in: set REX_TEST_SYSTEMD=1 on a host where systemd is pid 1")
	}
	requireSandbox(t)
	p := filepath.Join(t.TempDir(), "svc.cedar")
	must(t, os.WriteFile(p, []byte(svcPolicy), 0o644))
	o := rexExec(t, `svc.status("systemd-journald.service").load_state`, nil, "--policy", p, "--output", "json")
	wantStatus(t, o, "SUCCESS", "", 0)
	if string(o.res.Output) != `"loaded"` {
		t.Errorf("systemd-journald load_state = %s", o.res.Output)
	}
}
