package ipc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
)

// ErrMalformed wraps every decoding failure; the receiver treats it as a
// protocol violation.
var ErrMalformed = errors.New("malformed message")

// encoder is a reusable encoder with its buffer: one message costs no
// encoder or buffer allocation once the pool is warm.
type encoder struct {
	buf bytes.Buffer
	enc *msgpack.Encoder
}

var (
	encoderPool = sync.Pool{New: func() any {
		e := &encoder{}
		e.enc = msgpack.NewEncoder(&e.buf)
		return e
	}}
)

// scratchPool holds the buffers Marshal encodes into before its copy.
var scratchPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// maxPooledBuffer keeps a buffer that grew for one large message (a write
// body, an inline read) from staying pinned in the pool.
const maxPooledBuffer = 64 << 10

// Marshal encodes v as msgpack with field names as keys (see encode.go).
func Marshal(v any) ([]byte, error) {
	scratch := scratchPool.Get().(*[]byte)
	out, ok := appendEncode((*scratch)[:0], v)
	if ok {
		b := bytes.Clone(out) // one allocation of the right size
		if cap(out) <= maxPooledBuffer {
			*scratch = out
		}
		scratchPool.Put(scratch)
		return b, nil
	}
	scratchPool.Put(scratch)
	e := encoderPool.Get().(*encoder)
	e.buf.Reset()
	e.enc.Reset(&e.buf)
	e.enc.SetCustomStructTag("msgpack")
	e.enc.SetSortMapKeys(true)
	err := e.enc.Encode(v)
	out = bytes.Clone(e.buf.Bytes())
	if e.buf.Cap() <= maxPooledBuffer {
		encoderPool.Put(e)
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// AppendMarshal appends the encoding of v to dst: Marshal without its copy
// and allocation, for a caller that reuses dst from message to message.
func AppendMarshal(dst []byte, v any) ([]byte, error) {
	if out, ok := appendEncode(dst, v); ok {
		return out, nil
	}
	e := encoderPool.Get().(*encoder)
	own := e.buf
	e.buf = *bytes.NewBuffer(dst)
	e.enc.Reset(&e.buf)
	e.enc.SetCustomStructTag("msgpack")
	e.enc.SetSortMapKeys(true)
	err := e.enc.Encode(v)
	out := e.buf.Bytes()
	e.buf = own
	encoderPool.Put(e)
	if err != nil {
		return dst, err
	}
	return out, nil
}

// Unmarshal decodes one msgpack value from b into v, which must point to a
// concrete struct (see decode.go). It reads b once, checking every declared
// length against the bytes left and nesting against MaxDepth before it
// allocates, and accepts nothing Check refuses. Unknown or repeated fields,
// integers outside their field's type and trailing bytes are errors.
func Unmarshal(b []byte, v any) error { return unmarshal(b, v, false) }

// UnmarshalNoCopy is Unmarshal whose []byte fields alias b instead of
// copying it: for an envelope whose body is decoded (and so copied) before
// b is reused, as the socketpair's receive buffer is at the next Recv.
func UnmarshalNoCopy(b []byte, v any) error { return unmarshal(b, v, true) }

// Check walks one msgpack value that must fill b exactly: the protocol's
// rule for a well-formed message, written down on its own. Unmarshal
// enforces it as it decodes (FuzzDecode holds it to that), so only tests
// call Check. It rejects
// container and string lengths that exceed the bytes left (each element
// needs at least one byte), nesting deeper than maxDepth, extension types
// (rex uses none), the reserved byte 0xc1 and duplicate string keys in a
// map. It allocates nothing in proportion to declared lengths.
func Check(b []byte, maxDepth int) error {
	s := scanner{b: b, max: maxDepth}
	if err := s.value(0); err != nil {
		return err
	}
	if s.off != len(b) {
		return fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(b)-s.off)
	}
	return nil
}

type scanner struct {
	b   []byte
	off int
	max int
}

func (s *scanner) fail(what string) error {
	return fmt.Errorf("%w: %s at offset %d", ErrMalformed, what, s.off)
}

// take consumes n bytes and returns them, or fails without allocating.
func (s *scanner) take(n uint64) ([]byte, error) {
	if n > uint64(len(s.b)-s.off) {
		return nil, s.fail("length beyond end of message")
	}
	p := s.b[s.off : s.off+int(n)]
	s.off += int(n)
	return p, nil
}

func (s *scanner) uint(n int) (uint64, error) {
	p, err := s.take(uint64(n))
	if err != nil {
		return 0, err
	}
	return bigEndian(p), nil
}

// bigEndian reads the 1, 2, 4 or 8 bytes of a msgpack length or integer.
func bigEndian(p []byte) uint64 {
	switch len(p) {
	case 1:
		return uint64(p[0])
	case 2:
		return uint64(binary.BigEndian.Uint16(p))
	case 4:
		return uint64(binary.BigEndian.Uint32(p))
	}
	return binary.BigEndian.Uint64(p)
}

func (s *scanner) value(depth int) error {
	if depth > s.max {
		return s.fail("nesting too deep")
	}
	if s.off >= len(s.b) {
		return s.fail("unexpected end")
	}
	c := s.b[s.off]
	s.off++
	switch {
	case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
		return nil
	case c >= 0x80 && c <= 0x8f:
		return s.mapBody(uint64(c&0x0f), depth)
	case c >= 0x90 && c <= 0x9f:
		return s.arrayBody(uint64(c&0x0f), depth)
	case c >= 0xa0 && c <= 0xbf:
		_, err := s.take(uint64(c & 0x1f))
		return err
	}
	switch c {
	case 0xc4, 0xd9: // bin8, str8
		return s.sized(1)
	case 0xc5, 0xda: // bin16, str16
		return s.sized(2)
	case 0xc6, 0xdb: // bin32, str32
		return s.sized(4)
	case 0xca:
		_, err := s.take(4)
		return err
	case 0xcb:
		_, err := s.take(8)
		return err
	case 0xcc, 0xd0:
		_, err := s.take(1)
		return err
	case 0xcd, 0xd1:
		_, err := s.take(2)
		return err
	case 0xce, 0xd2:
		_, err := s.take(4)
		return err
	case 0xcf, 0xd3:
		_, err := s.take(8)
		return err
	case 0xdc:
		n, err := s.uint(2)
		if err != nil {
			return err
		}
		return s.arrayBody(n, depth)
	case 0xdd:
		n, err := s.uint(4)
		if err != nil {
			return err
		}
		return s.arrayBody(n, depth)
	case 0xde:
		n, err := s.uint(2)
		if err != nil {
			return err
		}
		return s.mapBody(n, depth)
	case 0xdf:
		n, err := s.uint(4)
		if err != nil {
			return err
		}
		return s.mapBody(n, depth)
	}
	s.off--
	return s.fail(fmt.Sprintf("unsupported type byte 0x%02x", c))
}

func (s *scanner) sized(width int) error {
	n, err := s.uint(width)
	if err != nil {
		return err
	}
	_, err = s.take(n)
	return err
}

func (s *scanner) arrayBody(n uint64, depth int) error {
	if n > uint64(len(s.b)-s.off) {
		return s.fail("array longer than message")
	}
	for i := uint64(0); i < n; i++ {
		if err := s.value(depth + 1); err != nil {
			return err
		}
	}
	return nil
}

func (s *scanner) mapBody(n uint64, depth int) error {
	if n > uint64(len(s.b)-s.off)/2 {
		return s.fail("map longer than message")
	}
	// Keys seen so far: the first few as slices of the message, compared
	// linearly (every rex message has fewer, and this allocates nothing);
	// past that, a map.
	var small [16][]byte
	nk := 0
	var seen map[string]struct{}
	for i := uint64(0); i < n; i++ {
		start := s.off
		if err := s.value(depth + 1); err != nil {
			return err
		}
		if key, ok := strKey(s.b[start:s.off]); ok {
			dup := false
			if seen == nil {
				for _, k := range small[:nk] {
					if bytes.Equal(k, key) {
						dup = true
						break
					}
				}
				if !dup && nk < len(small) {
					small[nk] = key
					nk++
				} else if !dup {
					seen = make(map[string]struct{}, min(n, 64))
					for _, k := range small[:nk] {
						seen[string(k)] = struct{}{}
					}
				}
			}
			if seen != nil {
				_, dup = seen[string(key)]
				seen[string(key)] = struct{}{}
			}
			if dup {
				return s.fail(fmt.Sprintf("duplicate key %q", key))
			}
		}
		if err := s.value(depth + 1); err != nil {
			return err
		}
	}
	return nil
}

// strKey returns the bytes of one already-checked msgpack str value.
func strKey(p []byte) ([]byte, bool) {
	switch c := p[0]; {
	case c >= 0xa0 && c <= 0xbf:
		return p[1:], true
	case c == 0xd9:
		return p[2:], true
	case c == 0xda:
		return p[3:], true
	case c == 0xdb:
		return p[5:], true
	}
	return nil, false
}

// ---- stream framing --------------------------------------------------------
//
// A frame is a 4-byte big-endian length n, then n bytes: one MsgType byte and
// the msgpack body. 1 ≤ n ≤ MaxFrame.

// WriteFrame writes one frame.
func WriteFrame(w io.Writer, t MsgType, v any) error {
	body, err := Marshal(v)
	if err != nil {
		return err
	}
	if len(body)+1 > MaxFrame {
		return Errorf(CodeLimit, "message of %d bytes exceeds the %d-byte frame cap", len(body)+1, MaxFrame)
	}
	buf := make([]byte, 5+len(body))
	binary.BigEndian.PutUint32(buf, uint32(len(body)+1))
	buf[4] = byte(t)
	copy(buf[5:], body)
	_, err = w.Write(buf)
	return err
}

// ReadFrame reads one frame of at most max bytes. The length is checked
// before the body is allocated.
func ReadFrame(r io.Reader, max int) (MsgType, []byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 || uint64(n) > uint64(max) {
		return 0, nil, fmt.Errorf("%w: frame length %d outside 1..%d", ErrMalformed, n, max)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return MsgType(buf[0]), buf[1:], nil
}

// ReadFrameAs reads one frame, requires its type to be want and decodes it.
// A MsgError frame is returned as its *Error.
func ReadFrameAs(r io.Reader, want MsgType, v any) error {
	t, body, err := ReadFrame(r, MaxFrame)
	if err != nil {
		return err
	}
	if t == MsgError && want != MsgError {
		var e ErrorMsg
		if err := Unmarshal(body, &e); err != nil {
			return err
		}
		return &Error{Code: e.Code, Message: e.Message}
	}
	if t != want {
		return fmt.Errorf("%w: got message type %d, want %d", ErrMalformed, t, want)
	}
	return Unmarshal(body, v)
}
