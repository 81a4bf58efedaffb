package pdktest_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pluginv1 "github.com/go-arcade/arcade/api/plugin/v1"
	"github.com/go-arcade/arcade/host"
	"github.com/go-arcade/arcade/pdk"
)

// TestTypesMatchContract holds the PDK's hand-kept types to the generated
// contract: a message with every field set goes protojson → PDK type →
// JSON → protojson and must come back equal, and the PDK type must know
// every field the contract sends (unknown fields are refused).
func TestTypesMatchContract(t *testing.T) {
	pairs := []struct {
		msg proto.Message
		pdk any
	}{
		{&pluginv1.PluginMetadata{}, &pdk.Metadata{}},
		{&pluginv1.PluginInput{}, &pdk.Key{}},
		{&pluginv1.StepRequest{}, &pdk.StepRequest{}},
		{&pluginv1.DeployRequest{}, &pdk.DeployRequest{}},
		{&pluginv1.StepResponse{}, &pdk.StepResponse{}},
		{&pluginv1.SendRequest{}, &pdk.SendRequest{}},
		{&pluginv1.SendTemplateRequest{}, &pdk.SendTemplateRequest{}},
		{&pluginv1.SendResponse{}, &pdk.SendResponse{}},
		{&pluginv1.SaveRequest{}, &pdk.SaveRequest{}},
		{&pluginv1.SaveResponse{}, &pdk.SaveResponse{}},
		{&pluginv1.LoadRequest{}, &pdk.LoadRequest{}},
		{&pluginv1.LoadResponse{}, &pdk.LoadResponse{}},
		{&pluginv1.DeleteRequest{}, &pdk.DeleteRequest{}},
		{&pluginv1.DeleteResponse{}, &pdk.DeleteResponse{}},
		{&pluginv1.ListRequest{}, &pdk.ListRequest{}},
		{&pluginv1.ListResponse{}, &pdk.ListResponse{}},
		{&pluginv1.StatRequest{}, &pdk.StatRequest{}},
		{&pluginv1.StatResponse{}, &pdk.StatResponse{}},
		{&pluginv1.PresignRequest{}, &pdk.PresignRequest{}},
		{&pluginv1.PresignResponse{}, &pdk.PresignResponse{}},
		{&pluginv1.UploadBeginRequest{}, &pdk.UploadBeginRequest{}},
		{&pluginv1.UploadBeginResponse{}, &pdk.UploadBeginResponse{}},
		{&pluginv1.UploadPartRequest{}, &pdk.UploadPartRequest{}},
		{&pluginv1.UploadPartResponse{}, &pdk.UploadPartResponse{}},
		{&pluginv1.UploadCompleteRequest{}, &pdk.UploadCompleteRequest{}},
		{&pluginv1.UploadCompleteResponse{}, &pdk.UploadCompleteResponse{}},
		{&pluginv1.UploadAbortRequest{}, &pdk.UploadAbortRequest{}},
		{&pluginv1.UploadAbortResponse{}, &pdk.UploadAbortResponse{}},
		{&pluginv1.ExecuteRequest{}, &pdk.ExecuteRequest{}},
		{&pluginv1.ExecuteResponse{}, &pdk.ExecuteResponse{}},
	}
	for _, pair := range pairs {
		name := string(pair.msg.ProtoReflect().Descriptor().Name())
		t.Run(name, func(t *testing.T) {
			fill(pair.msg.ProtoReflect())
			wire, err := protojson.Marshal(pair.msg)
			if err != nil {
				t.Fatal(err)
			}
			dec := json.NewDecoder(bytes.NewReader(wire))
			dec.DisallowUnknownFields()
			if err := dec.Decode(pair.pdk); err != nil {
				t.Fatalf("PDK type does not read the contract's JSON: %v\n%s", err, wire)
			}
			back, err := json.Marshal(pair.pdk)
			if err != nil {
				t.Fatal(err)
			}
			got := reflect.New(reflect.TypeOf(pair.msg).Elem()).Interface().(proto.Message)
			if err := protojson.Unmarshal(back, got); err != nil {
				t.Fatalf("contract does not read the PDK's JSON: %v\n%s", err, back)
			}
			if !proto.Equal(pair.msg, got) {
				t.Fatalf("round trip changed the message:\nsent %s\ngot  %s", wire, back)
			}
		})
	}
}

// fill sets every field of m to a non-zero value.
func fill(m protoreflect.Message) {
	switch m.Interface().(type) {
	case *timestamppb.Timestamp:
		proto.Merge(m.Interface(), &timestamppb.Timestamp{Seconds: 1700000000, Nanos: 5})
		return
	case *durationpb.Duration:
		proto.Merge(m.Interface(), &durationpb.Duration{Seconds: 90, Nanos: 5000})
		return
	case *structpb.Struct:
		s, _ := structpb.NewStruct(map[string]any{"k": "v", "n": 2.5, "b": true, "l": []any{"x"}})
		proto.Merge(m.Interface(), s)
		return
	}
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		f := fields.Get(i)
		switch {
		case f.IsMap():
			mp := m.Mutable(f).Map()
			mp.Set(protoreflect.ValueOfString("key").MapKey(), scalar(f.MapValue()))
		case f.IsList():
			l := m.Mutable(f).List()
			if f.Kind() == protoreflect.MessageKind {
				e := l.NewElement()
				fill(e.Message())
				l.Append(e)
			} else {
				l.Append(scalar(f))
			}
		case f.Kind() == protoreflect.MessageKind:
			fill(m.Mutable(f).Message())
		default:
			m.Set(f, scalar(f))
		}
	}
}

func scalar(f protoreflect.FieldDescriptor) protoreflect.Value {
	switch f.Kind() {
	case protoreflect.StringKind:
		return protoreflect.ValueOfString("s-" + string(f.Name()))
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(true)
	case protoreflect.EnumKind:
		return protoreflect.ValueOfEnum(1)
	case protoreflect.BytesKind:
		return protoreflect.ValueOfBytes([]byte{0, 1, 2, 250})
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32(7)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32(7)
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64(1 << 40)
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return protoreflect.ValueOfUint64(1 << 40)
	case protoreflect.DoubleKind:
		return protoreflect.ValueOfFloat64(1.5)
	case protoreflect.FloatKind:
		return protoreflect.ValueOfFloat32(1.5)
	}
	panic("unhandled kind " + f.Kind().String())
}

// TestKindFunctions: the PDK's default functions per kind are the host's.
func TestKindFunctions(t *testing.T) {
	for name, v := range pluginv1.Kind_value {
		k := pluginv1.Kind(v)
		if k == pluginv1.Kind_KIND_UNSPECIFIED {
			continue
		}
		if got, want := pdk.Kind(name).Functions(), host.RequiredFunctions(k); !slices.Equal(got, want) {
			t.Errorf("%s: pdk %v, host %v", name, got, want)
		}
	}
}

func FuzzInt64(f *testing.F) {
	for _, s := range []string{`"12"`, `12`, `-3`, `"9223372036854775807"`, `1e3`, `null`, `"x"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var v pdk.Int64
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			return
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var back pdk.Int64
		if err := json.Unmarshal(b, &back); err != nil || back != v {
			t.Fatalf("%s → %s → %d (%v)", s, b, back, err)
		}
	})
}
