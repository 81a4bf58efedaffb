//go:build wasip1

// Command s3-store is a storage plugin that keeps objects in a bucket of an
// S3-compatible store (AWS S3, MinIO, Ceph RGW, SeaweedFS, Versity
// Gateway…), each with its size, sha256, content type, expiry and
// metadata. Beyond save, load, delete and list it presigns URLs (so agents
// and browsers move bytes straight to and from the bucket), describes
// objects (stat), writes large objects in parts (multipart uploads, aborted
// on failure) and loads ranges.
//
// config: endpoint (scheme://host[:port], required), region (default
// us-east-1), bucket (required), prefix (put before every key, as is),
// addressing (path, the default, or virtual: bucket.host), access_key_id,
// secret_access_key and session_token. Give the credentials as stored
// secrets (secrets: in plugins.yaml), never written there. Grant the
// endpoint's host (allowed_hosts), or bucket.host with virtual addressing:
// nothing else.
//
// Requests are signed with AWS Signature Version 4. The sha256 of every
// upload is sent with it, so the store refuses bytes that do not match; the
// server computes it natively and passes it in (metadata "sha256" on save,
// sha256 on upload_part), so the plugin does not hash in the sandbox.
// Objects keep their sha256 and expiry as metadata (x-amz-meta-sha256,
// x-amz-meta-arcade-expires-at); an expired object is gone for load, stat
// and list, and is removed by whoever set the expiry (the server's sweep).
package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"os"
	"path"
	"strings"
	"time"

	"github.com/go-arcade/arcade/pdk"
	"github.com/go-arcade/arcade/plugins/s3-store/s3"
)

var meta = pdk.Metadata{
	Name:        "s3-store",
	Kind:        pdk.KindStorage,
	Version:     "1.0.0",
	Description: "objects in an S3-compatible bucket, with presigned transfers and multipart uploads",
	Functions: []string{"save", "load", "delete", "list", "stat", "presign",
		"upload_begin", "upload_part", "upload_complete", "upload_abort"},
	Capabilities: &pdk.Capabilities{ConfigKeys: s3.ConfigKeys},
	Storage: &pdk.StorageFeatures{Presign: true, Multipart: true, RangedLoad: true,
		MinPartBytes: s3.MinPartBytes, MaxPartBytes: 64 << 20, MaxPresignedPutBytes: s3.MaxPutBytes},
}

//go:wasmexport metadata
func metadata() int32 { return pdk.Describe(meta) }

func main() {}

// client is built from the config at the first call; a changed config
// reloads the plugin, hence new instances.
var client *s3.Client

func newClient() (*s3.Client, error) {
	if client != nil {
		return client, nil
	}
	cfg, err := s3.ParseConfig(pdk.Config)
	if err != nil {
		return nil, err
	}
	client = &s3.Client{Config: cfg, Do: fetch}
	return client, nil
}

// fetch makes a request through the host. A store that does not answer
// ends the call (the host reports it unreachable).
func fetch(r *s3.Request) (*s3.Response, error) {
	resp, err := pdk.FetchWithHeaders(pdk.Request{Method: r.Method, URL: r.URL, Header: r.Header, Body: r.Body})
	if err != nil {
		return nil, err
	}
	return &s3.Response{Status: resp.StatusCode, Header: resp.Header, Body: resp.Body}, nil
}

// failure turns an error into the status, code and message of a response.
func failure(err error) (pdk.Status, pdk.StorageErrorCode, []pdk.Message) {
	code := pdk.StorageErrorCode("")
	var e *s3.Error
	if errors.As(err, &e) {
		code = map[s3.Kind]pdk.StorageErrorCode{s3.NotFound: pdk.StorageNotFound, s3.Unavailable: pdk.StorageUnavailable,
			s3.Denied: pdk.StorageDenied, s3.Misconfigured: pdk.StorageMisconfigured, s3.Corrupt: pdk.StorageCorrupt,
			s3.Invalid: pdk.StorageInvalid}[e.Kind]
	} else {
		code = pdk.StorageMisconfigured // the config, or a request the plugin could not make
	}
	return pdk.StatusError, code, []pdk.Message{{Severity: pdk.SeverityHigh, Text: err.Error()}}
}

func invalid(format string, args ...any) error {
	msg := format
	if len(args) > 0 {
		msg = fmt.Sprintf(format, args...)
	}
	return &s3.Error{Kind: s3.Invalid, Op: "request", Message: msg}
}

func object(o *s3.Object) *pdk.Object {
	if o == nil {
		return nil
	}
	out := &pdk.Object{Key: o.Key, Size: pdk.Int64(o.Size), SHA256: o.SHA256, ContentType: o.ContentType, Metadata: o.Metadata}
	if len(out.Metadata) == 0 {
		out.Metadata = nil
	}
	if !o.Modified.IsZero() {
		out.CreatedAt = pdk.NewTimestamp(o.Modified)
	}
	if !o.Expires.IsZero() {
		out.ExpiresAt = pdk.NewTimestamp(o.Expires)
	}
	return out
}

func options(contentType, name string, md map[string]string, expires *pdk.Timestamp) s3.PutOptions {
	o := s3.PutOptions{ContentType: contentType, Metadata: md}
	if o.ContentType == "" {
		o.ContentType = mime.TypeByExtension(path.Ext(name))
	}
	if expires != nil {
		o.Expires = expires.Time
	}
	return o
}

// digest is the caller's sha256 when it is 64 hex digits, else "".
func digest(s string) string {
	s = strings.ToLower(s)
	if b, err := hex.DecodeString(s); err != nil || len(b) != 32 {
		return ""
	}
	return s
}

//go:wasmexport save
func save() int32 {
	return pdk.Run(func(input []byte) ([]byte, error) {
		var r pdk.SaveRequest
		if err := pdk.UnmarshalBytes(input, &r, "content", &r.Content); err != nil {
			return nil, err
		}
		return json.Marshal(runSave(&r))
	})
}

func runSave(r *pdk.SaveRequest) *pdk.SaveResponse {
	c, err := newClient()
	if err == nil {
		err = s3.CheckKey(r.Key)
	}
	content := r.Content
	if err == nil && r.SourcePath != "" {
		content, err = os.ReadFile(r.SourcePath)
	}
	var o *s3.Object
	if err == nil {
		o, err = c.Put(r.Key, content, digest(r.Metadata["sha256"]), options(r.ContentType, r.Key, r.Metadata, r.ExpiresAt))
	}
	if err != nil {
		st, code, msgs := failure(err)
		return &pdk.SaveResponse{Status: st, ErrorCode: code, Messages: msgs}
	}
	return &pdk.SaveResponse{Status: pdk.StatusSuccess, Object: object(o)}
}

//go:wasmexport load
func load() int32 {
	return pdk.Run(func(input []byte) ([]byte, error) {
		var r pdk.LoadRequest
		if err := pdk.InputJSON(&r); err != nil {
			return nil, err
		}
		resp, content := runLoad(&r)
		return pdk.MarshalBytes(resp, "content", content)
	})
}

func runLoad(r *pdk.LoadRequest) (*pdk.LoadResponse, []byte) {
	c, err := newClient()
	if err == nil {
		err = s3.CheckKey(r.Key)
	}
	if err == nil && r.TargetPath != "" {
		err = invalid("load: target_path is not supported: the object comes back inline")
	}
	var o *s3.Object
	var content []byte
	if err == nil {
		o, content, err = c.Get(r.Key, int64(r.Offset), int64(r.Length))
	}
	if err != nil {
		st, code, msgs := failure(err)
		return &pdk.LoadResponse{Status: st, ErrorCode: code, Messages: msgs}, nil
	}
	return &pdk.LoadResponse{Status: pdk.StatusSuccess, Object: object(o)}, content
}

//go:wasmexport delete
func del() int32 {
	return pdk.Handle(func(r *pdk.DeleteRequest) (*pdk.DeleteResponse, error) {
		c, err := newClient()
		if err == nil {
			err = s3.CheckKey(r.Key)
		}
		var was bool
		if err == nil {
			was, err = c.Delete(r.Key)
		}
		if err != nil {
			st, code, msgs := failure(err)
			return &pdk.DeleteResponse{Status: st, ErrorCode: code, Messages: msgs}, nil
		}
		return &pdk.DeleteResponse{Status: pdk.StatusSuccess, Deleted: was}, nil
	})
}

//go:wasmexport list
func list() int32 {
	return pdk.Handle(func(r *pdk.ListRequest) (*pdk.ListResponse, error) {
		// Each object listed costs a HEAD (a listing has no metadata): pages
		// stay small enough for one call's timeout.
		size := int(r.PageSize)
		if size <= 0 {
			size = 100
		}
		size = min(size, 200)
		c, err := newClient()
		var objs []s3.Object
		var next string
		if err == nil {
			objs, next, err = c.List(r.Prefix, r.PageToken, size)
		}
		if err != nil {
			st, code, msgs := failure(err)
			return &pdk.ListResponse{Status: st, ErrorCode: code, Messages: msgs}, nil
		}
		resp := &pdk.ListResponse{Status: pdk.StatusSuccess, NextPageToken: next}
		for i := range objs {
			resp.Objects = append(resp.Objects, *object(&objs[i]))
		}
		return resp, nil
	})
}

//go:wasmexport stat
func stat() int32 {
	return pdk.Handle(func(r *pdk.StatRequest) (*pdk.StatResponse, error) {
		c, err := newClient()
		if err == nil {
			err = s3.CheckKey(r.Key)
		}
		var o *s3.Object
		if err == nil {
			o, err = c.Head(r.Key)
		}
		if err != nil {
			st, code, msgs := failure(err)
			return &pdk.StatResponse{Status: st, ErrorCode: code, Messages: msgs}, nil
		}
		return &pdk.StatResponse{Status: pdk.StatusSuccess, Object: object(o)}, nil
	})
}

//go:wasmexport presign
func presign() int32 {
	return pdk.Handle(func(r *pdk.PresignRequest) (*pdk.PresignResponse, error) {
		c, err := newClient()
		if err == nil {
			err = s3.CheckKey(r.Key)
		}
		ttl := 15 * time.Minute
		if r.TTL != nil {
			ttl = r.TTL.Duration
		}
		var p *s3.Presigned
		if err == nil {
			switch strings.ToUpper(r.Method) {
			case "PUT":
				p, err = c.PresignPut(r.Key, int64(r.Size), r.SHA256, options(r.ContentType, r.Key, r.Metadata, r.ExpiresAt), ttl)
			case "GET":
				p, err = c.PresignGet(r.Key, r.Filename, ttl)
			default:
				err = invalid("presign: method %q: want PUT or GET", r.Method)
			}
		}
		if err != nil {
			st, code, msgs := failure(err)
			return &pdk.PresignResponse{Status: st, ErrorCode: code, Messages: msgs}, nil
		}
		return &pdk.PresignResponse{Status: pdk.StatusSuccess, Method: p.Method, URL: p.URL, Headers: p.Header,
			ExpiresAt: pdk.NewTimestamp(p.Expires)}, nil
	})
}

//go:wasmexport upload_begin
func uploadBegin() int32 {
	return pdk.Handle(func(r *pdk.UploadBeginRequest) (*pdk.UploadBeginResponse, error) {
		c, err := newClient()
		if err == nil {
			err = s3.CheckKey(r.Key)
		}
		var id string
		if err == nil {
			id, err = c.CreateMultipart(r.Key, digest(r.SHA256), options(r.ContentType, r.Key, r.Metadata, r.ExpiresAt))
		}
		if err != nil {
			st, code, msgs := failure(err)
			return &pdk.UploadBeginResponse{Status: st, ErrorCode: code, Messages: msgs}, nil
		}
		return &pdk.UploadBeginResponse{Status: pdk.StatusSuccess, UploadID: id}, nil
	})
}

//go:wasmexport upload_part
func uploadPart() int32 {
	return pdk.Run(func(input []byte) ([]byte, error) {
		var r pdk.UploadPartRequest
		if err := pdk.UnmarshalBytes(input, &r, "content", &r.Content); err != nil {
			return nil, err
		}
		c, err := newClient()
		if err == nil {
			err = s3.CheckKey(r.Key)
		}
		var etag string
		if err == nil {
			etag, err = c.UploadPart(r.Key, r.UploadID, int(r.PartNumber), r.Content, digest(r.SHA256))
		}
		if err != nil {
			st, code, msgs := failure(err)
			return json.Marshal(&pdk.UploadPartResponse{Status: st, ErrorCode: code, Messages: msgs})
		}
		return json.Marshal(&pdk.UploadPartResponse{Status: pdk.StatusSuccess, ETag: etag})
	})
}

//go:wasmexport upload_complete
func uploadComplete() int32 {
	return pdk.Handle(func(r *pdk.UploadCompleteRequest) (*pdk.UploadCompleteResponse, error) {
		c, err := newClient()
		if err == nil {
			err = s3.CheckKey(r.Key)
		}
		var o *s3.Object
		if err == nil {
			parts := make([]s3.Part, len(r.Parts))
			for i, p := range r.Parts {
				parts[i] = s3.Part{Number: int(p.PartNumber), ETag: p.ETag}
			}
			o, err = c.CompleteMultipart(r.Key, r.UploadID, parts)
		}
		if err != nil {
			st, code, msgs := failure(err)
			return &pdk.UploadCompleteResponse{Status: st, ErrorCode: code, Messages: msgs}, nil
		}
		return &pdk.UploadCompleteResponse{Status: pdk.StatusSuccess, Object: object(o)}, nil
	})
}

//go:wasmexport upload_abort
func uploadAbort() int32 {
	return pdk.Handle(func(r *pdk.UploadAbortRequest) (*pdk.UploadAbortResponse, error) {
		c, err := newClient()
		if err == nil {
			err = s3.CheckKey(r.Key)
		}
		if err == nil {
			err = c.AbortMultipart(r.Key, r.UploadID)
		}
		if err != nil {
			st, code, msgs := failure(err)
			return &pdk.UploadAbortResponse{Status: st, ErrorCode: code, Messages: msgs}, nil
		}
		return &pdk.UploadAbortResponse{Status: pdk.StatusSuccess}, nil
	})
}
