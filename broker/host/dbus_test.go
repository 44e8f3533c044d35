package host

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// privateBus starts a dbus-daemon (the Debian package) on a socket in a
// temporary directory, with a configuration that lets anyone own any name,
// and returns the socket path.
func privateBus(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("dbus-daemon")
	if err != nil {
		t.Fatalf("dbus-daemon not installed (apt-get install dbus-daemon): %v", err)
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "bus")
	conf := filepath.Join(dir, "bus.conf")
	mustWrite(t, conf, `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=`+sock+`</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
`)
	cmd := exec.Command(bin, "--config-file="+conf, "--nofork", "--nopidfile", "--print-address")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	ready := make(chan error, 1)
	go func() {
		_, err := bufio.NewReader(out).ReadString('\n')
		ready <- err
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatalf("dbus-daemon: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("dbus-daemon did not start")
	}
	return sock
}

func TestDBusMarshalRoundTrip(t *testing.T) {
	m := &DBusMessage{Type: DBusMethodCall, Serial: 7, Path: "/a/b", Interface: "x.y", Member: "M",
		Destination: "d.e", Signature: "subogv", Body: []any{"str", uint32(42), true, ObjectPath("/o"), Signature("as"), Variant{Sig: "s", Value: "in"}}}
	raw, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := UnmarshalDBus(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, m)
	}
	for i := 0; i < len(raw); i++ { // every truncation is an error, never a panic
		if _, err := UnmarshalDBus(raw[:i]); err == nil {
			t.Fatalf("truncated to %d bytes: accepted", i)
		}
	}
}

// Against a real dbus-daemon: authenticate, say Hello, call the bus, get
// an error reply for an unknown peer, and answer a call as a peer.
func TestDBusAgainstDaemon(t *testing.T) {
	sock := privateBus(t)
	b, err := DialBus(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if !strings.HasPrefix(b.Name, ":") {
		t.Errorf("unique name %q", b.Name)
	}
	r, err := b.Call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "GetNameOwner", "s", "org.freedesktop.DBus")
	if err != nil || len(r) != 1 || r[0] != "org.freedesktop.DBus" {
		t.Errorf("GetNameOwner = %v, %v", r, err)
	}
	_, err = b.Call("no.such.peer", "/", "x.y", "M", "")
	var de *DBusErr
	if !errors.As(err, &de) || de.Name != "org.freedesktop.DBus.Error.ServiceUnknown" {
		t.Errorf("call to a missing peer: %v", err)
	}

	// A second connection owns a name and answers one call.
	peer, err := DialBus(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	if r, err := peer.Call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "RequestName", "su", "rex.test.Echo", uint32(4)); err != nil || r[0] != uint32(1) {
		t.Fatalf("RequestName = %v, %v", r, err)
	}
	go func() {
		for {
			m, err := peer.Read()
			if err != nil {
				return
			}
			if m.Type == DBusMethodCall && m.Member == "Echo" {
				_ = peer.Send(&DBusMessage{Type: DBusMethodReturn, ReplySerial: m.Serial, Destination: m.Sender, Signature: "s", Body: []any{"echo:" + m.Body[0].(string)}})
			}
		}
	}()
	r, err = b.Call("rex.test.Echo", "/", "rex.test.Echo", "Echo", "s", "hi")
	if err != nil || len(r) != 1 || r[0] != "echo:hi" {
		t.Errorf("Echo = %v, %v", r, err)
	}
}

func TestValidUnit(t *testing.T) {
	for _, u := range []string{"nginx.service", "getty@tty1.service", "a-b_c:d.timer", `x\x2d.mount`} {
		if !ValidUnit(u) {
			t.Errorf("%q refused", u)
		}
	}
	for _, u := range []string{"", "nginx", "../x.service", "a b.service", "a/b.service", "x.service\n"} {
		if ValidUnit(u) {
			t.Errorf("%q accepted", u)
		}
	}
}

// FuzzUnmarshalDBus: no bytes from the bus make the decoder panic or read
// past its input.
func FuzzUnmarshalDBus(f *testing.F) {
	m := &DBusMessage{Type: DBusMethodReturn, Serial: 3, ReplySerial: 2, Signature: "sv", Body: []any{"x", Variant{Sig: "u", Value: uint32(1)}}}
	raw, _ := m.Marshal()
	f.Add(raw)
	f.Add([]byte("l\x01\x00\x01\xff\xff\xff\xff\x01\x00\x00\x00\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := UnmarshalDBus(data)
		if err == nil && len(m.Body) != len(m.Signature) {
			t.Fatalf("body of %d values for signature %q", len(m.Body), m.Signature)
		}
	})
}
