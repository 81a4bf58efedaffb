package host

import (
	"context"
	"net/url"
	"slices"

	pluginv1 "github.com/go-arcade/arcade/api/plugin/v1"
)

// The optional parts of the storage contract: each feature a plugin claims
// in PluginMetadata.storage needs these functions declared (and so
// exported).
var storageFeatureFunctions = []struct {
	name      string
	on        func(*pluginv1.StorageFeatures) bool
	functions []string
}{
	{"presign", (*pluginv1.StorageFeatures).GetPresign, []string{"presign", "stat"}},
	{"multipart", (*pluginv1.StorageFeatures).GetMultipart, []string{"upload_begin", "upload_part", "upload_complete", "upload_abort"}},
}

// checkStorageFeatures refuses a module that claims a storage feature
// without its functions, or part bounds that make no sense.
func checkStorageFeatures(name string, md *pluginv1.PluginMetadata) *Error {
	f := md.GetStorage()
	if f == nil {
		return nil
	}
	if md.GetKind() != pluginv1.Kind_KIND_STORAGE {
		return refused(name, ErrBadMetadata, "a %s plugin declares storage features", KindName(md.GetKind()))
	}
	for _, feat := range storageFeatureFunctions {
		if !feat.on(f) {
			continue
		}
		for _, fn := range feat.functions {
			if !slices.Contains(md.GetFunctions(), fn) {
				return refused(name, ErrMissingFunction, "storage feature %s needs function %s", feat.name, fn)
			}
		}
	}
	if f.GetMultipart() && (f.GetMinPartBytes() <= 0 || f.GetMaxPartBytes() < f.GetMinPartBytes()) {
		return refused(name, ErrBadMetadata, "multipart part bounds %d..%d bytes", f.GetMinPartBytes(), f.GetMaxPartBytes())
	}
	return nil
}

// Features returns what the serving version offers beyond save, load,
// delete and list; never nil.
func (s *StoragePlugin) Features() *pluginv1.StorageFeatures {
	if f := s.p.Metadata().GetStorage(); f != nil {
		return f
	}
	return &pluginv1.StorageFeatures{}
}

// Stat describes an object without its content (the presign feature).
func (s *StoragePlugin) Stat(ctx context.Context, in *pluginv1.StatRequest) (*pluginv1.StatResponse, error) {
	return invoke(ctx, s.p, "stat", in, &pluginv1.StatResponse{})
}

// Presign returns a request that puts or gets an object without the plugin
// (the presign feature). Its URL must lead to a host the plugin is granted:
// whoever is handed it (an agent, a browser) goes nowhere the plugin could
// not.
func (s *StoragePlugin) Presign(ctx context.Context, in *pluginv1.PresignRequest) (*pluginv1.PresignResponse, error) {
	out, err := invoke(ctx, s.p, "presign", in, &pluginv1.PresignResponse{})
	if err != nil || out.GetStatus() != pluginv1.Status_STATUS_SUCCESS {
		return out, err
	}
	u, perr := url.Parse(out.GetUrl())
	switch {
	case perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "":
		return nil, &Error{Plugin: s.p.name, Function: "presign", Reason: ErrBadOutput, Detail: "presigned URL is not an http(s) URL"}
	case !s.grants(u.Hostname()):
		return nil, &Error{Plugin: s.p.name, Function: "presign", Reason: ErrHostNotGranted, Detail: u.Hostname() + " (in a presigned URL)"}
	}
	return out, nil
}

// grants reports whether the serving version may reach host.
func (s *StoragePlugin) grants(host string) bool {
	v := s.p.cur.Load()
	return v != nil && v.guard != nil && v.guard.permits(host)
}

// UploadBegin opens a multipart upload (the multipart feature).
func (s *StoragePlugin) UploadBegin(ctx context.Context, in *pluginv1.UploadBeginRequest) (*pluginv1.UploadBeginResponse, error) {
	return invoke(ctx, s.p, "upload_begin", in, &pluginv1.UploadBeginResponse{})
}

// UploadPart stores one part of a multipart upload.
func (s *StoragePlugin) UploadPart(ctx context.Context, in *pluginv1.UploadPartRequest) (*pluginv1.UploadPartResponse, error) {
	return invoke(ctx, s.p, "upload_part", in, &pluginv1.UploadPartResponse{})
}

// UploadComplete makes the parts of a multipart upload the object.
func (s *StoragePlugin) UploadComplete(ctx context.Context, in *pluginv1.UploadCompleteRequest) (*pluginv1.UploadCompleteResponse, error) {
	return invoke(ctx, s.p, "upload_complete", in, &pluginv1.UploadCompleteResponse{})
}

// UploadAbort removes what an unfinished multipart upload stored.
func (s *StoragePlugin) UploadAbort(ctx context.Context, in *pluginv1.UploadAbortRequest) (*pluginv1.UploadAbortResponse, error) {
	return invoke(ctx, s.p, "upload_abort", in, &pluginv1.UploadAbortResponse{})
}
