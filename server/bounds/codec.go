package bounds

import (
	"fmt"
	"strconv"
	"sync"
	"unicode/utf8"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Codec is gRPC's protobuf codec, except that a request whose string field
// holds invalid UTF-8 is refused by the interceptors with InvalidArgument
// naming the field, rather than by gRPC with Internal ("failed to
// unmarshal"): gRPC turns any decoding error into Internal, so the codec
// notes the field against the message instead of failing, and the
// interceptor answers.
type Codec struct {
	base encoding.CodecV2

	mu  sync.Mutex
	bad map[any]*Error // message being decoded → its invalid field
}

// NewCodec returns the codec; serve it with grpc.ForceServerCodecV2.
func NewCodec() *Codec {
	return &Codec{base: encoding.GetCodecV2("proto"), bad: map[any]*Error{}}
}

// Name implements encoding.CodecV2.
func (c *Codec) Name() string { return c.base.Name() }

// Marshal implements encoding.CodecV2.
func (c *Codec) Marshal(v any) (mem.BufferSlice, error) { return c.base.Marshal(v) }

// Unmarshal implements encoding.CodecV2.
func (c *Codec) Unmarshal(data mem.BufferSlice, v any) error {
	err := c.base.Unmarshal(data, v)
	if err == nil {
		return nil
	}
	m, ok := v.(proto.Message)
	if !ok {
		return err
	}
	buf := data.Materialize()
	field := invalidUTF8(buf, m.ProtoReflect().Descriptor(), "")
	if field == "" {
		return err
	}
	// The message stays as far as it was decoded: the interceptor refuses
	// it before any service sees it.
	c.mu.Lock()
	c.bad[v] = &Error{Field: field, Reason: "must be valid UTF-8"}
	c.mu.Unlock()
	return nil
}

// take returns and forgets the decoding problem noted against m.
func (c *Codec) take(m any) error {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.bad[m]
	if !ok {
		return nil
	}
	delete(c.bad, m)
	return e
}

// invalidUTF8 finds the first string field of the wire message b (of type
// md) that is not valid UTF-8 and returns its path, "" if none.
func invalidUTF8(b []byte, md protoreflect.MessageDescriptor, path string) string {
	seen := map[protowire.Number]int{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return ""
		}
		b = b[n:]
		if typ != protowire.BytesType {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return ""
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return ""
		}
		b = b[n:]
		fd := md.Fields().ByNumber(num)
		if fd == nil {
			continue
		}
		name := join(path, string(fd.Name()))
		if fd.IsList() {
			name += "[" + strconv.Itoa(seen[num]) + "]"
			seen[num]++
		}
		switch {
		case fd.IsMap():
			if f := invalidUTF8Entry(v, fd, name); f != "" {
				return f
			}
		case fd.Kind() == protoreflect.StringKind:
			if !utf8.Valid(v) {
				return name
			}
		case fd.Kind() == protoreflect.MessageKind:
			if f := invalidUTF8(v, fd.Message(), name); f != "" {
				return f
			}
		}
	}
	return ""
}

// invalidUTF8Entry checks one map entry (key 1, value 2).
func invalidUTF8Entry(b []byte, fd protoreflect.FieldDescriptor, name string) string {
	var key, val []byte
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return ""
		}
		b = b[n:]
		if typ != protowire.BytesType {
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return ""
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return ""
		}
		b = b[n:]
		switch num {
		case 1:
			key = v
		case 2:
			val = v
		}
	}
	field := fmt.Sprintf("%s[%q]", name, key)
	switch {
	case fd.MapKey().Kind() == protoreflect.StringKind && !utf8.Valid(key):
		return fmt.Sprintf("%s (a key)", name)
	case fd.MapValue().Kind() == protoreflect.StringKind && !utf8.Valid(val):
		return field
	case fd.MapValue().Kind() == protoreflect.MessageKind:
		return invalidUTF8(val, fd.MapValue().Message(), field)
	}
	return ""
}
