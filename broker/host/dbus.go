package host

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rex-sh/rex/ipc"
)

// A minimal D-Bus client: SASL EXTERNAL over a Unix socket, method calls,
// returns and errors, with the few types systemd's Manager API needs
// (y b u s o g v, and the header's array of (yv)). Little-endian only on
// the way out; both byte orders are read. Enough to be a test peer too.

// D-Bus message types.
const (
	DBusMethodCall   byte = 1
	DBusMethodReturn byte = 2
	DBusError        byte = 3
	DBusSignal       byte = 4
)

// Caps on what the broker accepts from the bus.
const (
	maxDBusHeader = 64 << 10
	maxDBusBody   = 1 << 20
	dbusTimeout   = 30 * time.Second
)

// ObjectPath is a D-Bus object path (type o).
type ObjectPath string

// Signature is a D-Bus signature (type g).
type Signature string

// Variant is a D-Bus variant (type v) holding one value of a basic type.
type Variant struct {
	Sig   string
	Value any
}

// DBusMessage is one message. Body holds the values of Signature, in order.
type DBusMessage struct {
	Type        byte
	Flags       byte
	Serial      uint32
	Path        ObjectPath
	Interface   string
	Member      string
	ErrorName   string
	ReplySerial uint32
	Destination string
	Sender      string
	Signature   string
	Body        []any
}

// DBusErr is an error reply.
type DBusErr struct {
	Name, Message string
}

func (e *DBusErr) Error() string { return e.Name + ": " + e.Message }

// Bus is one connection to a message bus.
type Bus struct {
	mu     sync.Mutex // one call at a time; guards serial
	c      *net.UnixConn
	serial uint32
	// Name is the unique name the bus gave this connection.
	Name string
}

// SystemBusPath is the system bus socket: DBUS_SYSTEM_BUS_ADDRESS when it
// names a unix path, else /run/dbus/system_bus_socket.
func SystemBusPath() string {
	for _, a := range strings.Split(os.Getenv("DBUS_SYSTEM_BUS_ADDRESS"), ";") {
		if rest, ok := strings.CutPrefix(a, "unix:"); ok {
			for _, kv := range strings.Split(rest, ",") {
				if p, ok := strings.CutPrefix(kv, "path="); ok {
					return p
				}
			}
		}
	}
	return "/run/dbus/system_bus_socket"
}

// DialBus connects to the bus at socket path, authenticates as this
// process's uid with SASL EXTERNAL, and says Hello.
func DialBus(path string) (*Bus, error) {
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, err
	}
	b := &Bus{c: c}
	_ = c.SetDeadline(time.Now().Add(dbusTimeout))
	if err := b.auth(); err != nil {
		c.Close()
		return nil, fmt.Errorf("d-bus authentication: %w", err)
	}
	_ = c.SetDeadline(time.Time{})
	reply, err := b.Call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "Hello", "")
	if err != nil {
		c.Close()
		return nil, err
	}
	if len(reply) == 1 {
		b.Name, _ = reply[0].(string)
	}
	return b, nil
}

// auth runs SASL EXTERNAL: a NUL byte, AUTH with the hex of the decimal
// uid, OK from the server, BEGIN.
func (b *Bus) auth() error {
	uid := hex.EncodeToString([]byte(strconv.Itoa(os.Getuid())))
	if _, err := b.c.Write([]byte("\x00AUTH EXTERNAL " + uid + "\r\n")); err != nil {
		return err
	}
	line, err := b.readLine()
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "OK ") {
		return fmt.Errorf("server said %q", line)
	}
	_, err = b.c.Write([]byte("BEGIN\r\n"))
	return err
}

// readLine reads one CRLF-ended line byte by byte, so that nothing of the
// binary protocol after it is consumed.
func (b *Bus) readLine() (string, error) {
	var line []byte
	one := make([]byte, 1)
	for len(line) < 512 {
		if _, err := b.c.Read(one); err != nil {
			return "", err
		}
		if one[0] == '\n' {
			return strings.TrimSuffix(string(line), "\r"), nil
		}
		line = append(line, one[0])
	}
	return "", errors.New("authentication line too long")
}

// Close closes the connection.
func (b *Bus) Close() error { return b.c.Close() }

// Call makes a method call and waits for its return; an error reply is a
// *DBusErr. Messages that are not the reply (signals, calls) are dropped.
func (b *Bus) Call(dest string, path ObjectPath, iface, member, sig string, args ...any) ([]any, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.serial++
	m := &DBusMessage{Type: DBusMethodCall, Serial: b.serial, Path: path, Interface: iface, Member: member,
		Destination: dest, Signature: sig, Body: args}
	_ = b.c.SetDeadline(time.Now().Add(dbusTimeout))
	defer b.c.SetDeadline(time.Time{})
	if err := b.write(m); err != nil {
		return nil, err
	}
	for {
		r, err := b.read()
		if err != nil {
			return nil, err
		}
		if r.ReplySerial != m.Serial || (r.Type != DBusMethodReturn && r.Type != DBusError) {
			continue
		}
		if r.Type == DBusError {
			e := &DBusErr{Name: r.ErrorName}
			if len(r.Body) > 0 {
				e.Message, _ = r.Body[0].(string)
			}
			return nil, e
		}
		return r.Body, nil
	}
}

// Send writes m, giving it the next serial; for peers that answer calls.
func (b *Bus) Send(m *DBusMessage) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.serial++
	m.Serial = b.serial
	return b.write(m)
}

// Read reads the next message; for peers that answer calls.
func (b *Bus) Read() (*DBusMessage, error) { return b.read() }

func (b *Bus) write(m *DBusMessage) error {
	raw, err := m.Marshal()
	if err != nil {
		return err
	}
	_, err = b.c.Write(raw)
	return err
}

func (b *Bus) read() (*DBusMessage, error) {
	head := make([]byte, 16)
	if _, err := readFull(b.c, head); err != nil {
		return nil, err
	}
	var order binary.ByteOrder = binary.LittleEndian
	switch head[0] {
	case 'l':
	case 'B':
		order = binary.BigEndian
	default:
		return nil, errors.New("d-bus: bad byte order")
	}
	bodyLen, fieldsLen := order.Uint32(head[4:]), order.Uint32(head[12:])
	if fieldsLen > maxDBusHeader || bodyLen > maxDBusBody {
		return nil, errors.New("d-bus: message too large")
	}
	hlen := (16 + int(fieldsLen) + 7) &^ 7
	rest := make([]byte, hlen-16+int(bodyLen))
	if _, err := readFull(b.c, rest); err != nil {
		return nil, err
	}
	return UnmarshalDBus(append(head, rest...))
}

func readFull(c net.Conn, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		k, err := c.Read(p[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// ---- marshalling -----------------------------------------------------------

type dbusEnc struct{ b []byte }

func (e *dbusEnc) align(n int) {
	for len(e.b)%n != 0 {
		e.b = append(e.b, 0)
	}
}

func (e *dbusEnc) u32(v uint32) {
	e.align(4)
	e.b = binary.LittleEndian.AppendUint32(e.b, v)
}

func (e *dbusEnc) str(s string) {
	e.u32(uint32(len(s)))
	e.b = append(append(e.b, s...), 0)
}

func (e *dbusEnc) sig(s string) {
	e.b = append(append(append(e.b, byte(len(s))), s...), 0)
}

// value writes one value of the single complete type t.
func (e *dbusEnc) value(t byte, v any) error {
	bad := fmt.Errorf("d-bus: cannot marshal %T as %c", v, t)
	switch t {
	case 'y':
		x, ok := v.(byte)
		if !ok {
			return bad
		}
		e.b = append(e.b, x)
	case 'b':
		x, ok := v.(bool)
		if !ok {
			return bad
		}
		n := uint32(0)
		if x {
			n = 1
		}
		e.u32(n)
	case 'u':
		x, ok := v.(uint32)
		if !ok {
			return bad
		}
		e.u32(x)
	case 's':
		x, ok := v.(string)
		if !ok {
			return bad
		}
		e.str(x)
	case 'o':
		x, ok := v.(ObjectPath)
		if !ok {
			return bad
		}
		e.str(string(x))
	case 'g':
		x, ok := v.(Signature)
		if !ok {
			return bad
		}
		e.sig(string(x))
	case 'v':
		x, ok := v.(Variant)
		if !ok || len(x.Sig) != 1 || x.Sig == "v" {
			return bad
		}
		e.sig(x.Sig)
		return e.value(x.Sig[0], x.Value)
	default:
		return fmt.Errorf("d-bus: type %c not supported", t)
	}
	return nil
}

// Marshal encodes m in little-endian byte order.
func (m *DBusMessage) Marshal() ([]byte, error) {
	if len(m.Body) != len(m.Signature) {
		return nil, fmt.Errorf("d-bus: %d values for signature %q", len(m.Body), m.Signature)
	}
	var body dbusEnc
	for i, v := range m.Body {
		if err := body.value(m.Signature[i], v); err != nil {
			return nil, err
		}
	}
	e := dbusEnc{b: []byte{'l', m.Type, m.Flags, 1}}
	e.u32(uint32(len(body.b)))
	e.u32(m.Serial)
	e.u32(0) // fields length, patched below
	start := len(e.b)
	field := func(code byte, sig string, v any) {
		e.align(8)
		e.b = append(e.b, code)
		_ = e.value('v', Variant{Sig: sig, Value: v})
	}
	if m.Path != "" {
		field(1, "o", m.Path)
	}
	if m.Interface != "" {
		field(2, "s", m.Interface)
	}
	if m.Member != "" {
		field(3, "s", m.Member)
	}
	if m.ErrorName != "" {
		field(4, "s", m.ErrorName)
	}
	if m.ReplySerial != 0 {
		field(5, "u", m.ReplySerial)
	}
	if m.Destination != "" {
		field(6, "s", m.Destination)
	}
	if m.Sender != "" {
		field(7, "s", m.Sender)
	}
	if m.Signature != "" {
		field(8, "g", Signature(m.Signature))
	}
	binary.LittleEndian.PutUint32(e.b[12:], uint32(len(e.b)-start))
	e.align(8)
	return append(e.b, body.b...), nil
}

type dbusDec struct {
	b     []byte
	off   int
	order binary.ByteOrder
}

var errDBusShort = errors.New("d-bus: truncated message")

func (d *dbusDec) align(n int) error {
	for d.off%n != 0 {
		if d.off >= len(d.b) {
			return errDBusShort
		}
		d.off++
	}
	return nil
}

func (d *dbusDec) u32() (uint32, error) {
	if err := d.align(4); err != nil {
		return 0, err
	}
	if d.off+4 > len(d.b) {
		return 0, errDBusShort
	}
	v := d.order.Uint32(d.b[d.off:])
	d.off += 4
	return v, nil
}

func (d *dbusDec) str() (string, error) {
	n, err := d.u32()
	if err != nil {
		return "", err
	}
	if uint64(d.off)+uint64(n)+1 > uint64(len(d.b)) {
		return "", errDBusShort
	}
	s := string(d.b[d.off : d.off+int(n)])
	d.off += int(n) + 1
	return s, nil
}

func (d *dbusDec) sig() (string, error) {
	if d.off >= len(d.b) {
		return "", errDBusShort
	}
	n := int(d.b[d.off])
	if d.off+1+n+1 > len(d.b) {
		return "", errDBusShort
	}
	s := string(d.b[d.off+1 : d.off+1+n])
	d.off += n + 2
	return s, nil
}

func (d *dbusDec) value(t byte, depth int) (any, error) {
	switch t {
	case 'y':
		if d.off >= len(d.b) {
			return nil, errDBusShort
		}
		d.off++
		return d.b[d.off-1], nil
	case 'b':
		v, err := d.u32()
		return v != 0, err
	case 'u':
		return d.u32()
	case 's':
		return d.str()
	case 'o':
		s, err := d.str()
		return ObjectPath(s), err
	case 'g':
		s, err := d.sig()
		return Signature(s), err
	case 'v':
		s, err := d.sig()
		if err != nil {
			return nil, err
		}
		if len(s) != 1 || depth > 4 {
			return nil, fmt.Errorf("d-bus: variant of type %q not supported", s)
		}
		v, err := d.value(s[0], depth+1)
		return Variant{Sig: s, Value: v}, err
	}
	return nil, fmt.Errorf("d-bus: type %c not supported", t)
}

// UnmarshalDBus decodes one whole message.
func UnmarshalDBus(raw []byte) (*DBusMessage, error) {
	if len(raw) < 16 {
		return nil, errDBusShort
	}
	d := &dbusDec{b: raw, order: binary.LittleEndian}
	if raw[0] == 'B' {
		d.order = binary.BigEndian
	}
	m := &DBusMessage{Type: raw[1], Flags: raw[2]}
	bodyLen := d.order.Uint32(raw[4:])
	m.Serial = d.order.Uint32(raw[8:])
	fieldsLen := d.order.Uint32(raw[12:])
	d.off = 16
	end := 16 + int(fieldsLen)
	if end > len(raw) {
		return nil, errDBusShort
	}
	for d.off < end {
		if err := d.align(8); err != nil {
			return nil, err
		}
		if d.off >= end {
			break
		}
		code := raw[d.off]
		d.off++
		v, err := d.value('v', 0)
		if err != nil {
			return nil, err
		}
		val := v.(Variant).Value
		switch code {
		case 1:
			m.Path, _ = val.(ObjectPath)
		case 2:
			m.Interface, _ = val.(string)
		case 3:
			m.Member, _ = val.(string)
		case 4:
			m.ErrorName, _ = val.(string)
		case 5:
			m.ReplySerial, _ = val.(uint32)
		case 6:
			m.Destination, _ = val.(string)
		case 7:
			m.Sender, _ = val.(string)
		case 8:
			s, _ := val.(Signature)
			m.Signature = string(s)
		}
	}
	d.off = (end + 7) &^ 7
	if d.off+int(bodyLen) != len(raw) {
		return nil, errDBusShort
	}
	// Body alignment is relative to the start of the message, which the
	// body's own start (8-aligned) preserves.
	for i := 0; i < len(m.Signature); i++ {
		v, err := d.value(m.Signature[i], 0)
		if err != nil {
			return nil, err
		}
		m.Body = append(m.Body, v)
	}
	return m, nil
}

// ---- systemd ---------------------------------------------------------------

const (
	systemdDest    = "org.freedesktop.systemd1"
	systemdPath    = ObjectPath("/org/freedesktop/systemd1")
	systemdManager = "org.freedesktop.systemd1.Manager"
)

// UnitStatus is what svc.status reports.
type UnitStatus struct {
	Unit, Description, LoadState, ActiveState, SubState string
}

// ValidUnit says whether name is a unit name systemd accepts: letters,
// digits and :-_.\@, with a type suffix.
func ValidUnit(name string) bool {
	if name == "" || len(name) > 255 || !strings.Contains(name, ".") {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(":-_.\\@", r)) {
			return false
		}
	}
	return true
}

// Systemd talks to systemd's Manager over the system bus, one connection
// per call (the broker serves few of them, and a fresh connection never
// inherits a broken one).
type Systemd struct {
	// Socket is the bus socket; empty means SystemBusPath().
	Socket string
}

func (s Systemd) call(member, sig string, args ...any) ([]any, error) {
	path := s.Socket
	if path == "" {
		path = SystemBusPath()
	}
	b, err := DialBus(path)
	if err != nil {
		return nil, systemdErr(err)
	}
	defer b.Close()
	r, err := b.Call(systemdDest, systemdPath, systemdManager, member, sig, args...)
	return r, systemdErr(err)
}

// UnitAction starts, stops or restarts unit (mode "replace") and returns
// the job's object path.
func (s Systemd) UnitAction(action, unit string) (string, error) {
	member := map[string]string{"start": "StartUnit", "stop": "StopUnit", "restart": "RestartUnit"}[action]
	if member == "" {
		return "", ipc.Errorf(ipc.CodeInvalid, "unknown unit action %q", action)
	}
	r, err := s.call(member, "ss", unit, "replace")
	if err != nil {
		return "", err
	}
	if len(r) != 1 {
		return "", ipc.Errorf(ipc.CodeIO, "systemd: unexpected reply to %s", member)
	}
	job, _ := r[0].(ObjectPath)
	return string(job), nil
}

// Reload is systemctl daemon-reload.
func (s Systemd) Reload() error {
	_, err := s.call("Reload", "")
	return err
}

// Status loads unit and reads its state properties.
func (s Systemd) Status(unit string) (UnitStatus, error) {
	path := s.Socket
	if path == "" {
		path = SystemBusPath()
	}
	b, err := DialBus(path)
	if err != nil {
		return UnitStatus{}, systemdErr(err)
	}
	defer b.Close()
	r, err := b.Call(systemdDest, systemdPath, systemdManager, "LoadUnit", "s", unit)
	if err != nil {
		return UnitStatus{}, systemdErr(err)
	}
	if len(r) != 1 {
		return UnitStatus{}, ipc.Errorf(ipc.CodeIO, "systemd: unexpected reply to LoadUnit")
	}
	upath, _ := r[0].(ObjectPath)
	st := UnitStatus{Unit: unit}
	for prop, dst := range map[string]*string{
		"Description": &st.Description, "LoadState": &st.LoadState, "ActiveState": &st.ActiveState, "SubState": &st.SubState,
	} {
		v, err := b.Call(systemdDest, upath, "org.freedesktop.DBus.Properties", "Get", "ss", "org.freedesktop.systemd1.Unit", prop)
		if err != nil {
			return UnitStatus{}, systemdErr(err)
		}
		if len(v) == 1 {
			if vv, ok := v[0].(Variant); ok {
				*dst, _ = vv.Value.(string)
			}
		}
	}
	return st, nil
}

// systemdErr maps bus and systemd errors to script-facing ones, naming the
// D-Bus error but no host detail.
func systemdErr(err error) error {
	if err == nil {
		return nil
	}
	var de *DBusErr
	if errors.As(err, &de) {
		code := ipc.CodeIO
		if de.Name == "org.freedesktop.systemd1.NoSuchUnit" {
			code = ipc.CodeNotFound
		}
		return ipc.Errorf(code, "systemd: %s: %s", de.Name, strings.ToValidUTF8(de.Message, "?"))
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return ipc.Errorf(ipc.CodeTimeout, "systemd did not answer in time")
	}
	return ipc.Errorf(ipc.CodeIO, "the system bus cannot be reached")
}
