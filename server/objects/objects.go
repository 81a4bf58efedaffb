// Package objects keeps bytes through a storage plugin: job artifacts,
// archived logs, and anything else the server stores past its database. It
// is the server's side of the storage contract (api/plugin/v1): small
// objects in one call (Save, Load), large ones written as they arrive and
// read back piece by piece (NewWriter, Read), and, where the plugin can
// presign, short-lived URLs that let agents and API clients move bytes
// straight to and from the store (PresignPut, PresignGet, then Stat to
// check what arrived).
//
// Errors wrap one of the sentinel errors below, so callers tell a store
// that is down (ErrUnavailable, worth trying again) from one that refuses
// (ErrDenied, ErrMisconfigured) without reading messages.
package objects

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pluginv1 "github.com/go-arcade/arcade/api/plugin/v1"
	"github.com/go-arcade/arcade/host"
)

// Plugin is what objects need of a storage plugin (host.StoragePlugin).
// The functions of a feature are called only when Features declares it.
type Plugin interface {
	Save(ctx context.Context, in *pluginv1.SaveRequest) (*pluginv1.SaveResponse, error)
	Load(ctx context.Context, in *pluginv1.LoadRequest) (*pluginv1.LoadResponse, error)
	Delete(ctx context.Context, in *pluginv1.DeleteRequest) (*pluginv1.DeleteResponse, error)
	Features() *pluginv1.StorageFeatures
	Stat(ctx context.Context, in *pluginv1.StatRequest) (*pluginv1.StatResponse, error)
	Presign(ctx context.Context, in *pluginv1.PresignRequest) (*pluginv1.PresignResponse, error)
	UploadBegin(ctx context.Context, in *pluginv1.UploadBeginRequest) (*pluginv1.UploadBeginResponse, error)
	UploadPart(ctx context.Context, in *pluginv1.UploadPartRequest) (*pluginv1.UploadPartResponse, error)
	UploadComplete(ctx context.Context, in *pluginv1.UploadCompleteRequest) (*pluginv1.UploadCompleteResponse, error)
	UploadAbort(ctx context.Context, in *pluginv1.UploadAbortRequest) (*pluginv1.UploadAbortResponse, error)
}

// Why a call failed.
var (
	// ErrNoStore: no storage plugin is configured, or it is not loaded.
	ErrNoStore = errors.New("no artifact store")
	// ErrNotFound: there is no such object (or it expired).
	ErrNotFound = errors.New("no such object")
	// ErrUnavailable: the store did not answer or failed on its side;
	// trying again later may work.
	ErrUnavailable = errors.New("store unavailable")
	// ErrDenied: the store refused the plugin's credentials or access.
	ErrDenied = errors.New("store refused access")
	// ErrMisconfigured: the plugin's configuration is wrong (a missing
	// bucket, say).
	ErrMisconfigured = errors.New("store misconfigured")
	// ErrCorrupt: the content does not match its sha256.
	ErrCorrupt = errors.New("object is corrupt")
	// ErrInvalid: the request is invalid (a bad key, too large).
	ErrInvalid = errors.New("invalid storage request")
	// ErrCannotPresign: the store makes no presigned URLs (for this
	// object).
	ErrCannotPresign = errors.New("the store cannot presign")
)

// Large objects are written and read in pieces: a plugin call carries its
// bytes in memory (inside the sandbox, base64 in JSON), so pieces bound
// every call whatever the object's size.
const (
	// DefaultPartSize is the size of the part objects of a plugin without
	// multipart uploads.
	DefaultPartSize = 4 << 20
	// MultipartPartSize is the size of the parts of a multipart upload,
	// within the plugin's bounds.
	MultipartPartSize = 8 << 20
	// ReadPieceSize is the most bytes one ranged load asks for.
	ReadPieceSize = 8 << 20
)

// Store reads and writes objects through a storage plugin, looked up at
// each use so that a plugin swapped while the server runs is followed.
type Store struct {
	lookup        func() (Plugin, error)
	partSize      int
	multipartSize int
}

// New returns a store over the plugin lookup returns; partSize is the size
// of the parts large objects are written in, within a multipart plugin's
// bounds (0: DefaultPartSize for part objects, MultipartPartSize for
// multipart uploads).
func New(lookup func() (Plugin, error), partSize int) *Store {
	if partSize <= 0 {
		return &Store{lookup: lookup, partSize: DefaultPartSize, multipartSize: MultipartPartSize}
	}
	return &Store{lookup: lookup, partSize: partSize, multipartSize: partSize}
}

func (s *Store) plugin() (Plugin, error) {
	if s == nil || s.lookup == nil {
		return nil, ErrNoStore
	}
	p, err := s.lookup()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoStore, err)
	}
	return p, nil
}

// Available reports why objects cannot be stored now, nil when they can.
func (s *Store) Available() error {
	_, err := s.plugin()
	return err
}

// Features returns what the serving plugin offers beyond save, load,
// delete and list.
func (s *Store) Features() (*pluginv1.StorageFeatures, error) {
	p, err := s.plugin()
	if err != nil {
		return nil, err
	}
	return p.Features(), nil
}

// partSizeFor is the size of the parts of a plugin with features f: the
// store's part size, within the plugin's bounds for a multipart upload.
func (s *Store) partSizeFor(f *pluginv1.StorageFeatures) int {
	if !f.GetMultipart() {
		return s.partSize
	}
	n := max(int64(s.multipartSize), f.GetMinPartBytes())
	if f.GetMaxPartBytes() > 0 {
		n = min(n, f.GetMaxPartBytes())
	}
	return int(n)
}

// failure turns a response that is not SUCCESS into an error wrapping the
// sentinel of its error code.
func failure(op, key string, st pluginv1.Status, code pluginv1.StorageErrorCode, msgs []*pluginv1.Message) error {
	if st == pluginv1.Status_STATUS_SUCCESS {
		return nil
	}
	var texts []string
	for _, m := range msgs {
		texts = append(texts, m.GetText())
	}
	text := strings.Join(texts, "; ")
	if text == "" {
		text = st.String()
	}
	var kind error
	switch code {
	case pluginv1.StorageErrorCode_STORAGE_ERROR_CODE_NOT_FOUND:
		kind = ErrNotFound
	case pluginv1.StorageErrorCode_STORAGE_ERROR_CODE_UNAVAILABLE:
		kind = ErrUnavailable
	case pluginv1.StorageErrorCode_STORAGE_ERROR_CODE_DENIED:
		kind = ErrDenied
	case pluginv1.StorageErrorCode_STORAGE_ERROR_CODE_MISCONFIGURED:
		kind = ErrMisconfigured
	case pluginv1.StorageErrorCode_STORAGE_ERROR_CODE_CORRUPT:
		kind = ErrCorrupt
	case pluginv1.StorageErrorCode_STORAGE_ERROR_CODE_INVALID:
		kind = ErrInvalid
	default:
		return fmt.Errorf("storage %s %s: %s", op, key, text)
	}
	return &Error{Op: op, Key: key, Kind: kind, Text: text}
}

// callError wraps a failed plugin call: a store that does not answer, or a
// plugin that timed out, is unavailable.
func callError(op, key string, err error) error {
	switch {
	case errors.Is(err, host.ErrUnreachable), errors.Is(err, host.ErrTimeout):
		return &Error{Op: op, Key: key, Kind: ErrUnavailable, Text: err.Error(), Err: err}
	case errors.Is(err, host.ErrNotLoaded), errors.Is(err, host.ErrNotFound):
		return &Error{Op: op, Key: key, Kind: ErrNoStore, Text: err.Error(), Err: err}
	}
	return fmt.Errorf("storage %s %s: %w", op, key, err)
}

// Error is a failed storage call of a known kind.
type Error struct {
	Op, Key string
	// Kind is one of the sentinel errors.
	Kind error
	// Text is the plugin's own account.
	Text string
	Err  error
}

func (e *Error) Error() string { return fmt.Sprintf("storage %s %s: %s", e.Op, e.Key, e.Text) }

// Unwrap exposes the kind and the cause to errors.Is and errors.As.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// Meta is what an object keeps beside its content.
type Meta struct {
	ContentType string
	// Expires is when the object may be removed; zero: never.
	Expires  time.Time
	Metadata map[string]string
}

func (m Meta) expires() *timestamppb.Timestamp {
	if m.Expires.IsZero() {
		return nil
	}
	return timestamppb.New(m.Expires)
}

func (m Meta) contentType() string {
	if m.ContentType == "" {
		return "application/octet-stream"
	}
	return m.ContentType
}

func hexSHA256(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Save stores data as the object key in one call (keep it below the
// plugin's memory limit).
func (s *Store) Save(ctx context.Context, key string, data []byte, m Meta) error {
	p, err := s.plugin()
	if err != nil {
		return err
	}
	// The digest, cheap here, spares the plugin hashing in the sandbox.
	md := map[string]string{"sha256": hexSHA256(data)}
	for k, v := range m.Metadata {
		md[k] = v
	}
	resp, err := p.Save(ctx, &pluginv1.SaveRequest{Key: key, Content: data, ContentType: m.contentType(), Metadata: md, ExpiresAt: m.expires()})
	if err != nil {
		return callError("save", key, err)
	}
	return failure("save", key, resp.GetStatus(), resp.GetErrorCode(), resp.GetMessages())
}

// Load returns the content of the object key, checked against its
// sha256.
func (s *Store) Load(ctx context.Context, key string) ([]byte, error) {
	p, err := s.plugin()
	if err != nil {
		return nil, err
	}
	resp, err := p.Load(ctx, &pluginv1.LoadRequest{Key: key})
	if err != nil {
		return nil, callError("load", key, err)
	}
	if err := failure("load", key, resp.GetStatus(), resp.GetErrorCode(), resp.GetMessages()); err != nil {
		return nil, err
	}
	// Checked here, natively, where hashing is cheap (the first-party
	// stores need not hash in the sandbox).
	if want := resp.GetObject().GetSha256(); want != "" {
		if got := hexSHA256(resp.GetContent()); got != want {
			return nil, &Error{Op: "load", Key: key, Kind: ErrCorrupt, Text: fmt.Sprintf("sha256 %s, recorded %s", got, want)}
		}
	}
	return resp.GetContent(), nil
}

// Delete removes the object key; an object already gone is no error.
func (s *Store) Delete(ctx context.Context, key string) error {
	p, err := s.plugin()
	if err != nil {
		return err
	}
	resp, err := p.Delete(ctx, &pluginv1.DeleteRequest{Key: key})
	if err != nil {
		return callError("delete", key, err)
	}
	return failure("delete", key, resp.GetStatus(), resp.GetErrorCode(), resp.GetMessages())
}

// Object describes a stored object.
type Object struct {
	Key         string
	Size        int64
	SHA256      string
	ContentType string
	Expires     time.Time
}

// Stat describes the object key without its content (ErrNotFound when
// there is none). It needs the presign feature.
func (s *Store) Stat(ctx context.Context, key string) (*Object, error) {
	p, err := s.plugin()
	if err != nil {
		return nil, err
	}
	if !p.Features().GetPresign() {
		return nil, &Error{Op: "stat", Key: key, Kind: ErrCannotPresign, Text: "the plugin does not describe objects (no presign feature)"}
	}
	resp, err := p.Stat(ctx, &pluginv1.StatRequest{Key: key})
	if err != nil {
		return nil, callError("stat", key, err)
	}
	if err := failure("stat", key, resp.GetStatus(), resp.GetErrorCode(), resp.GetMessages()); err != nil {
		return nil, err
	}
	o := resp.GetObject()
	if o == nil {
		return nil, &Error{Op: "stat", Key: key, Kind: ErrNotFound, Text: "no such object"}
	}
	obj := &Object{Key: key, Size: o.GetSize(), SHA256: o.GetSha256(), ContentType: o.GetContentType()}
	if o.GetExpiresAt() != nil {
		obj.Expires = o.GetExpiresAt().AsTime()
	}
	return obj, nil
}

// Presigned is a request that puts or gets one object without the server:
// make it as given, before Expires.
type Presigned struct {
	Method  string
	URL     string
	Header  map[string]string
	Expires time.Time
}

// CanPresign reports whether the store makes presigned URLs now.
func (s *Store) CanPresign() bool {
	f, err := s.Features()
	return err == nil && f.GetPresign()
}

// CanPresignPut reports whether an object of size bytes can be put
// through a presigned URL.
func (s *Store) CanPresignPut(size int64) bool {
	f, err := s.Features()
	return err == nil && f.GetPresign() && (f.GetMaxPresignedPutBytes() == 0 || size <= f.GetMaxPresignedPutBytes())
}

// PresignPut returns a PUT, valid for ttl, that stores the object key of
// size bytes: the store refuses content that does not hash to sha256 (hex).
func (s *Store) PresignPut(ctx context.Context, key string, size int64, sha256Hex string, m Meta, ttl time.Duration) (*Presigned, error) {
	if !s.CanPresignPut(size) {
		if err := s.Available(); err != nil {
			return nil, err
		}
		return nil, &Error{Op: "presign", Key: key, Kind: ErrCannotPresign, Text: fmt.Sprintf("no presigned PUT for %d bytes", size)}
	}
	return s.presign(ctx, &pluginv1.PresignRequest{Key: key, Method: "PUT", Ttl: durationpb.New(ttl), Size: size, Sha256: sha256Hex,
		ContentType: m.contentType(), Metadata: m.Metadata, ExpiresAt: m.expires()})
}

// PresignGet returns a GET, valid for ttl, of the object key; a browser
// saves it as filename when one is given.
func (s *Store) PresignGet(ctx context.Context, key, filename string, ttl time.Duration) (*Presigned, error) {
	if !s.CanPresign() {
		if err := s.Available(); err != nil {
			return nil, err
		}
		return nil, &Error{Op: "presign", Key: key, Kind: ErrCannotPresign, Text: "the plugin makes no presigned URLs"}
	}
	return s.presign(ctx, &pluginv1.PresignRequest{Key: key, Method: "GET", Ttl: durationpb.New(ttl), Filename: filename})
}

func (s *Store) presign(ctx context.Context, in *pluginv1.PresignRequest) (*Presigned, error) {
	p, err := s.plugin()
	if err != nil {
		return nil, err
	}
	resp, err := p.Presign(ctx, in)
	if err != nil {
		return nil, callError("presign", in.GetKey(), err)
	}
	if err := failure("presign", in.GetKey(), resp.GetStatus(), resp.GetErrorCode(), resp.GetMessages()); err != nil {
		return nil, err
	}
	out := &Presigned{Method: resp.GetMethod(), URL: resp.GetUrl(), Header: resp.GetHeaders(), Expires: resp.GetExpiresAt().AsTime()}
	if out.Header == nil {
		out.Header = map[string]string{}
	}
	return out, nil
}
