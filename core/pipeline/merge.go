package pipeline

import (
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The merge rule of includes and extends, defined once: later wins.
//   - A field the later message leaves at its zero value does not override.
//   - Lists replace (a later depends_on, commands or stages list is the
//     list; nothing is appended).
//   - Maps merge by key, the later value of a key replacing the earlier.
//   - Messages merge field by field, by the same rule, except the well-known
//     ones (durations), which are values and replace.

// merge merges src into dst by the rule above.
func merge(dst, src proto.Message) {
	mergeMessage(dst.ProtoReflect(), src.ProtoReflect())
}

func mergeMessage(dst, src protoreflect.Message) {
	src.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList():
			l := dst.NewField(fd).List()
			sl := v.List()
			for i := 0; i < sl.Len(); i++ {
				l.Append(cloneValue(fd, sl.Get(i)))
			}
			dst.Set(fd, protoreflect.ValueOfList(l))
		case fd.IsMap():
			m := dst.Mutable(fd).Map()
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				m.Set(k, cloneValue(fd.MapValue(), mv))
				return true
			})
		case fd.Message() != nil && !atomic(fd.Message()):
			mergeMessage(dst.Mutable(fd).Message(), v.Message())
		default:
			dst.Set(fd, cloneValue(fd, v))
		}
		return true
	})
}

// atomic reports whether messages of md are values that replace (the
// google.protobuf ones: a duration is not merged second by nano).
func atomic(md protoreflect.MessageDescriptor) bool {
	return md.ParentFile().Package() == "google.protobuf"
}

func cloneValue(fd protoreflect.FieldDescriptor, v protoreflect.Value) protoreflect.Value {
	if fd.Message() != nil {
		return protoreflect.ValueOfMessage(proto.Clone(v.Message().Interface()).ProtoReflect())
	}
	return v
}
