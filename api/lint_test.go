package api_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	pluginv1 "github.com/go-arcade/arcade/api/plugin/v1"
	secretv1 "github.com/go-arcade/arcade/api/secret/v1"
)

// TestProtoLint holds the contracts to the rules of buf's STANDARD lint set
// that matter to clients: versioned packages, RPC request/response pairs,
// prefixed enum values with an UNSPECIFIED zero, lower_snake_case fields,
// PascalCase messages, and every RPC and service documented.
func TestProtoLint(t *testing.T) {
	files := []protoreflect.FileDescriptor{
		agentv1.File_api_agent_v1_agent_proto,
		jobv1.File_api_job_v1_job_proto,
		jobv1.File_api_job_v1_stream_proto,
		pluginv1.File_api_plugin_v1_plugin_proto,
		secretv1.File_api_secret_v1_secret_proto,
	}
	snake := regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)
	pascal := regexp.MustCompile(`^[A-Z][A-Za-z0-9]*$`)
	upperSnake := regexp.MustCompile(`^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$`)
	version := regexp.MustCompile(`\.v[0-9]+$`)

	for _, fd := range files {
		path := fd.Path()
		if !version.MatchString(string(fd.Package())) {
			t.Errorf("%s: package %s is not versioned (want …v1)", path, fd.Package())
		}
		if opts, _ := fd.Options().(*descriptorpb.FileOptions); opts.GetGoPackage() == "" {
			t.Errorf("%s: go_package option missing", path)
		}
		var checkEnum func(protoreflect.EnumDescriptor)
		checkEnum = func(ed protoreflect.EnumDescriptor) {
			prefix := toUpperSnake(string(ed.Name())) + "_"
			vals := ed.Values()
			if vals.Len() == 0 || vals.Get(0).Number() != 0 || vals.Get(0).Name() != protoreflect.Name(prefix+"UNSPECIFIED") {
				t.Errorf("%s: enum %s: zero value must be %sUNSPECIFIED", path, ed.FullName(), prefix)
			}
			for i := range vals.Len() {
				v := vals.Get(i)
				if !strings.HasPrefix(string(v.Name()), prefix) || !upperSnake.MatchString(string(v.Name())) {
					t.Errorf("%s: enum value %s must be UPPER_SNAKE_CASE prefixed %s", path, v.Name(), prefix)
				}
			}
		}
		var checkMessage func(protoreflect.MessageDescriptor)
		checkMessage = func(md protoreflect.MessageDescriptor) {
			if md.IsMapEntry() {
				return
			}
			if !pascal.MatchString(string(md.Name())) {
				t.Errorf("%s: message %s must be PascalCase", path, md.FullName())
			}
			for i := range md.Fields().Len() {
				f := md.Fields().Get(i)
				if !snake.MatchString(string(f.Name())) {
					t.Errorf("%s: field %s must be lower_snake_case", path, f.FullName())
				}
			}
			for i := range md.Enums().Len() {
				checkEnum(md.Enums().Get(i))
			}
			for i := range md.Messages().Len() {
				checkMessage(md.Messages().Get(i))
			}
		}
		for i := range fd.Enums().Len() {
			checkEnum(fd.Enums().Get(i))
		}
		for i := range fd.Messages().Len() {
			checkMessage(fd.Messages().Get(i))
		}
		for i := range fd.Services().Len() {
			sd := fd.Services().Get(i)
			if !strings.HasSuffix(string(sd.Name()), "Service") {
				t.Errorf("%s: service %s must end in Service", path, sd.Name())
			}
			if !documented(t, path, "service "+string(sd.Name())) {
				t.Errorf("%s: service %s has no comment", path, sd.Name())
			}
			for j := range sd.Methods().Len() {
				m := sd.Methods().Get(j)
				if got, want := string(m.Input().Name()), string(m.Name())+"Request"; got != want {
					t.Errorf("%s: rpc %s takes %s, want %s", path, m.Name(), got, want)
				}
				if got, want := string(m.Output().Name()), string(m.Name())+"Response"; got != want {
					t.Errorf("%s: rpc %s returns %s, want %s", path, m.Name(), got, want)
				}
			}
		}
	}
}

// documented reports whether the line before the one starting with decl in
// the .proto file is a comment (generated descriptors carry no comments).
func documented(t *testing.T, path, decl string) bool {
	t.Helper()
	raw, err := os.ReadFile(strings.TrimPrefix(path, "api/"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(raw), "\n")
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), decl+" ") && i > 0 {
			return strings.HasPrefix(strings.TrimSpace(lines[i-1]), "//")
		}
	}
	return false
}

func toUpperSnake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return strings.ToUpper(b.String())
}
