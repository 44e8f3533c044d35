package broker

import (
	"github.com/rex-sh/rex/authz"
	"github.com/rex-sh/rex/broker/host"
	"github.com/rex-sh/rex/ipc"
)

var actRedactedRead = authz.FileAction("redacted_read")

// readPermit decides between a plain and a redacted read (Rex): read if
// the policy allows it, else redacted_read, else the read denial. The
// first two are asked quietly, so a run that reads redacted content is not
// charged with a read denial.
func (s *session) readPermit(res authz.Resource) (redact bool, err error) {
	if s.visible(actRead, res) {
		return false, nil
	}
	if s.visible(actRedactedRead, res) {
		return true, nil
	}
	return false, s.checkFile(actRead, res, nil)
}

// redactedRead returns a regular file with every line that the operator's
// dictionary does not match replaced by [REDACTED]. The result always
// travels inline, never as a descriptor, which would carry the raw bytes.
func (s *session) redactedRead(t *target) (any, error) {
	info := t.obj.Info()
	if info.Kind != host.KindFile {
		return nil, ipc.Errorf(ipc.CodeUnsupported, "%s is a %s, not a regular file", t.path, info.Kind)
	}
	limit := int64(ipc.MaxInline - 4<<10)
	data, err := t.obj.ReadAll(limit)
	if err != nil {
		if host.Code(err) == ipc.CodeLimit {
			return nil, ipc.Errorf(ipc.CodeLimit, "%s is over the %d-byte cap of a redacted read", t.path, limit)
		}
		return nil, hostErr(err)
	}
	out := s.run.redact.apply(data)
	if int64(len(out)) > limit {
		return nil, ipc.Errorf(ipc.CodeLimit, "%s redacted is over the %d-byte cap of a redacted read", t.path, limit)
	}
	return &ipc.ReadResp{Data: out, Size: int64(len(out))}, nil
}
