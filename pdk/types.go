package pdk

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"
)

// The types below mirror the arcade.plugin.v1 contract
// (api/plugin/v1/plugin.proto). Their JSON is the contract's protojson:
// lowerCamelCase names, enums by name, timestamps in RFC 3339, bytes in
// base64. They are kept by hand so that plugins need no protobuf runtime;
// a test holds them to the generated code.

// ContractVersion is the contract version this PDK speaks.
const ContractVersion = "v1"

// Kind is a plugin kind.
type Kind string

// Plugin kinds.
const (
	KindCI       Kind = "KIND_CI"
	KindCD       Kind = "KIND_CD"
	KindSecurity Kind = "KIND_SECURITY"
	KindNotify   Kind = "KIND_NOTIFY"
	KindStorage  Kind = "KIND_STORAGE"
	KindCustom   Kind = "KIND_CUSTOM"
)

// Functions returns the functions a plugin of kind k must export.
func (k Kind) Functions() []string {
	switch k {
	case KindCI:
		return []string{"build", "test", "lint"}
	case KindCD:
		return []string{"deploy", "rollback"}
	case KindSecurity:
		return []string{"scan", "audit"}
	case KindNotify:
		return []string{"send", "send_template"}
	case KindStorage:
		return []string{"save", "load", "delete", "list"}
	case KindCustom:
		return []string{"execute"}
	}
	return nil
}

// Status is the outcome of a call.
type Status string

// Outcomes.
const (
	StatusSuccess Status = "STATUS_SUCCESS"
	StatusFailure Status = "STATUS_FAILURE" // the step ran and failed (findings, failing tests)
	StatusSkipped Status = "STATUS_SKIPPED"
	StatusError   Status = "STATUS_ERROR"
)

// Severity grades messages and findings.
type Severity string

// Severities.
const (
	SeverityInfo     Severity = "SEVERITY_INFO"
	SeverityLow      Severity = "SEVERITY_LOW"
	SeverityMedium   Severity = "SEVERITY_MEDIUM"
	SeverityHigh     Severity = "SEVERITY_HIGH"
	SeverityCritical Severity = "SEVERITY_CRITICAL"
)

// Metadata is what the metadata export returns (PluginMetadata).
type Metadata struct {
	Name            string        `json:"name"`
	Kind            Kind          `json:"kind"`
	Version         string        `json:"version"`
	ContractVersion string        `json:"contractVersion"`
	Functions       []string      `json:"functions"`
	Capabilities    *Capabilities `json:"capabilities,omitempty"`
	Description     string        `json:"description,omitempty"`
	Author          string        `json:"author,omitempty"`
	Homepage        string        `json:"homepage,omitempty"`
	// Storage says what a storage plugin offers beyond save, load, delete
	// and list; its functions must be listed in Functions too.
	Storage *StorageFeatures `json:"storage,omitempty"`
	// Params declares the with: parameters a step may give, Config the keys
	// of the plugins.yaml config. Declared, they are enforced: an unknown
	// or missing required key is refused at pipeline creation (params) or
	// at load (config), naming it. Nothing declared: nothing is checked.
	Params []Key `json:"params,omitempty"`
	Config []Key `json:"config,omitempty"`
}

// Key is one declared param or config key (PluginInput in plugin.proto).
type Key struct {
	// Name is the key; a config name ending in ".*" covers every key with
	// that prefix.
	Name string `json:"name"`
	// Type is "string" (the default), "bool" or "number".
	Type     string `json:"type,omitempty"`
	Required bool   `json:"required,omitempty"`
	// Default is what the plugin uses when the key is absent (shown only;
	// the plugin applies it).
	Default     string `json:"defaultValue,omitempty"`
	Description string `json:"description,omitempty"`
}

// StorageFeatures are the optional parts of the storage contract
// (StorageFeatures in plugin.proto).
type StorageFeatures struct {
	// Presign: the plugin exports presign and stat.
	Presign bool `json:"presign,omitempty"`
	// Multipart: the plugin exports upload_begin, upload_part,
	// upload_complete and upload_abort, for parts of MinPartBytes to
	// MaxPartBytes.
	Multipart    bool  `json:"multipart,omitempty"`
	MinPartBytes Int64 `json:"minPartBytes,omitempty"`
	MaxPartBytes Int64 `json:"maxPartBytes,omitempty"`
	// RangedLoad: load honours LoadRequest.Offset and Length.
	RangedLoad bool `json:"rangedLoad,omitempty"`
	// MaxPresignedPutBytes bounds one presigned PUT (0: no bound).
	MaxPresignedPutBytes Int64 `json:"maxPresignedPutBytes,omitempty"`
}

// StorageErrorCode says why a storage call failed (with StatusError).
type StorageErrorCode string

// Storage error codes.
const (
	StorageNotFound      StorageErrorCode = "STORAGE_ERROR_CODE_NOT_FOUND"
	StorageUnavailable   StorageErrorCode = "STORAGE_ERROR_CODE_UNAVAILABLE" // down or failing: worth trying again
	StorageDenied        StorageErrorCode = "STORAGE_ERROR_CODE_DENIED"      // credentials or access refused
	StorageMisconfigured StorageErrorCode = "STORAGE_ERROR_CODE_MISCONFIGURED"
	StorageCorrupt       StorageErrorCode = "STORAGE_ERROR_CODE_CORRUPT"
	StorageInvalid       StorageErrorCode = "STORAGE_ERROR_CODE_INVALID"
)

// Capabilities are what a plugin asks for; the operator grants them in
// plugins.yaml (a request is not a grant).
type Capabilities struct {
	AllowedHosts   []string    `json:"allowedHosts,omitempty"`
	AllowedPaths   []PathGrant `json:"allowedPaths,omitempty"`
	MemoryLimitMiB uint32      `json:"memoryLimitMib,omitempty"`
	TimeoutMs      Int64       `json:"timeoutMs,omitempty"`
	ConfigKeys     []string    `json:"configKeys,omitempty"`
}

// PathGrant is a folder inside the sandbox.
type PathGrant struct {
	HostPath  string `json:"hostPath,omitempty"`
	GuestPath string `json:"guestPath,omitempty"`
	ReadOnly  bool   `json:"readOnly,omitempty"`
}

// StepContext says which job step a call serves.
type StepContext struct {
	JobID         string            `json:"jobId,omitempty"`
	JobName       string            `json:"jobName,omitempty"`
	PipelineID    string            `json:"pipelineId,omitempty"`
	PipelineRunID string            `json:"pipelineRunId,omitempty"`
	Stage         string            `json:"stage,omitempty"`
	Step          string            `json:"step,omitempty"`
	Workspace     string            `json:"workspace,omitempty"` // the workspace's path inside the sandbox
	Env           map[string]string `json:"env,omitempty"`
	Repository    string            `json:"repository,omitempty"`
	Ref           string            `json:"ref,omitempty"`
	Commit        string            `json:"commit,omitempty"`
	AgentID       string            `json:"agentId,omitempty"`
	Attempt       int32             `json:"attempt,omitempty"`
}

// Params are a step's free-form parameters (google.protobuf.Struct).
type Params map[string]any

// String returns the string parameter key, or def.
func (p Params) String(key, def string) string {
	if s, ok := p[key].(string); ok {
		return s
	}
	return def
}

// Bool returns the boolean parameter key, or def.
func (p Params) Bool(key string, def bool) bool {
	if b, ok := p[key].(bool); ok {
		return b
	}
	return def
}

// Number returns the numeric parameter key, or def.
func (p Params) Number(key string, def float64) float64 {
	if f, ok := p[key].(float64); ok {
		return f
	}
	return def
}

// Strings returns the list parameter key (a list of strings, or one string).
func (p Params) Strings(key string) []string {
	switch v := p[key].(type) {
	case string:
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// StepRequest is the input of ci build/test/lint and security scan/audit.
type StepRequest struct {
	Context *StepContext `json:"context,omitempty"`
	Params  Params       `json:"params,omitempty"`
}

// DeployRequest is the input of cd deploy/rollback.
type DeployRequest struct {
	Context     *StepContext `json:"context,omitempty"`
	Params      Params       `json:"params,omitempty"`
	Environment string       `json:"environment,omitempty"`
	Version     string       `json:"version,omitempty"`
	Artifacts   []string     `json:"artifacts,omitempty"`
}

// Message is a line for the user.
type Message struct {
	Severity Severity `json:"severity,omitempty"`
	Text     string   `json:"text,omitempty"`
}

// Finding is one problem found at a place in a file.
type Finding struct {
	Rule     string   `json:"rule,omitempty"`
	Severity Severity `json:"severity,omitempty"`
	Message  string   `json:"message,omitempty"`
	File     string   `json:"file,omitempty"`
	Line     int32    `json:"line,omitempty"`
	Column   int32    `json:"column,omitempty"`
}

// File is a file a step produced or looked at.
type File struct {
	Path        string `json:"path,omitempty"`
	Size        Int64  `json:"size,omitempty"`
	SHA256      string `json:"sha256,omitempty"`
	ContentType string `json:"contentType,omitempty"`
	Kind        string `json:"kind,omitempty"`
}

// StepResponse is the output of ci, cd and security functions.
type StepResponse struct {
	Status   Status             `json:"status,omitempty"`
	Summary  string             `json:"summary,omitempty"`
	Messages []Message          `json:"messages,omitempty"`
	Findings []Finding          `json:"findings,omitempty"`
	Files    []File             `json:"files,omitempty"`
	Outputs  map[string]string  `json:"outputs,omitempty"`
	Metrics  map[string]float64 `json:"metrics,omitempty"`
}

// NotifyEvent is the event a notification is about.
type NotifyEvent struct {
	Type          string            `json:"type,omitempty"`
	JobID         string            `json:"jobId,omitempty"`
	PipelineID    string            `json:"pipelineId,omitempty"`
	PipelineRunID string            `json:"pipelineRunId,omitempty"`
	Status        string            `json:"status,omitempty"`
	URL           string            `json:"url,omitempty"`
	Time          *Timestamp        `json:"time,omitempty"`
	Labels        map[string]string `json:"labels,omitempty"`
}

// SendRequest is the input of notify send.
type SendRequest struct {
	Channel  string            `json:"channel,omitempty"`
	Title    string            `json:"title,omitempty"`
	Body     string            `json:"body,omitempty"`
	Severity Severity          `json:"severity,omitempty"`
	Event    *NotifyEvent      `json:"event,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// SendTemplateRequest is the input of notify send_template: a template
// (a name, or the text itself when Inline) rendered with Data and Event.
type SendTemplateRequest struct {
	Channel  string       `json:"channel,omitempty"`
	Template string       `json:"template,omitempty"`
	Inline   bool         `json:"inline,omitempty"`
	Data     Params       `json:"data,omitempty"`
	Event    *NotifyEvent `json:"event,omitempty"`
}

// SendResponse is the output of notify functions.
type SendResponse struct {
	Status    Status    `json:"status,omitempty"`
	MessageID string    `json:"messageId,omitempty"`
	Messages  []Message `json:"messages,omitempty"`
}

// Object is a stored object's description.
type Object struct {
	Key         string            `json:"key,omitempty"`
	Size        Int64             `json:"size,omitempty"`
	SHA256      string            `json:"sha256,omitempty"`
	ContentType string            `json:"contentType,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	CreatedAt   *Timestamp        `json:"createdAt,omitempty"`
	ExpiresAt   *Timestamp        `json:"expiresAt,omitempty"`
}

// SaveRequest is the input of storage save: Content, or a file at
// SourcePath inside the sandbox.
type SaveRequest struct {
	Key         string            `json:"key,omitempty"`
	Content     []byte            `json:"content,omitempty"`
	SourcePath  string            `json:"sourcePath,omitempty"`
	ContentType string            `json:"contentType,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	ExpiresAt   *Timestamp        `json:"expiresAt,omitempty"`
}

// SaveResponse is the output of storage save.
type SaveResponse struct {
	Status    Status           `json:"status,omitempty"`
	Object    *Object          `json:"object,omitempty"`
	Messages  []Message        `json:"messages,omitempty"`
	ErrorCode StorageErrorCode `json:"errorCode,omitempty"`
}

// LoadRequest is the input of storage load; with TargetPath the content is
// written there instead of returned. With the ranged_load feature, Offset
// and Length (0: to the end) select a range.
type LoadRequest struct {
	Key        string `json:"key,omitempty"`
	TargetPath string `json:"targetPath,omitempty"`
	Offset     Int64  `json:"offset,omitempty"`
	Length     Int64  `json:"length,omitempty"`
}

// LoadResponse is the output of storage load; Object describes the whole
// object.
type LoadResponse struct {
	Status    Status           `json:"status,omitempty"`
	Object    *Object          `json:"object,omitempty"`
	Content   []byte           `json:"content,omitempty"`
	Messages  []Message        `json:"messages,omitempty"`
	ErrorCode StorageErrorCode `json:"errorCode,omitempty"`
}

// DeleteRequest is the input of storage delete.
type DeleteRequest struct {
	Key string `json:"key,omitempty"`
}

// DeleteResponse is the output of storage delete.
type DeleteResponse struct {
	Status    Status           `json:"status,omitempty"`
	Deleted   bool             `json:"deleted,omitempty"`
	Messages  []Message        `json:"messages,omitempty"`
	ErrorCode StorageErrorCode `json:"errorCode,omitempty"`
}

// ListRequest is the input of storage list.
type ListRequest struct {
	Prefix    string `json:"prefix,omitempty"`
	PageSize  int32  `json:"pageSize,omitempty"`
	PageToken string `json:"pageToken,omitempty"`
}

// ListResponse is the output of storage list.
type ListResponse struct {
	Status        Status           `json:"status,omitempty"`
	Objects       []Object         `json:"objects,omitempty"`
	NextPageToken string           `json:"nextPageToken,omitempty"`
	Messages      []Message        `json:"messages,omitempty"`
	ErrorCode     StorageErrorCode `json:"errorCode,omitempty"`
}

// StatRequest is the input of storage stat.
type StatRequest struct {
	Key string `json:"key,omitempty"`
}

// StatResponse is the output of storage stat; Object is nil when there is
// no such object.
type StatResponse struct {
	Status    Status           `json:"status,omitempty"`
	Object    *Object          `json:"object,omitempty"`
	Messages  []Message        `json:"messages,omitempty"`
	ErrorCode StorageErrorCode `json:"errorCode,omitempty"`
}

// PresignRequest is the input of storage presign.
type PresignRequest struct {
	Key         string            `json:"key,omitempty"`
	Method      string            `json:"method,omitempty"` // PUT or GET
	TTL         *Duration         `json:"ttl,omitempty"`
	Size        Int64             `json:"size,omitempty"`
	SHA256      string            `json:"sha256,omitempty"`
	ContentType string            `json:"contentType,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	ExpiresAt   *Timestamp        `json:"expiresAt,omitempty"`
	Filename    string            `json:"filename,omitempty"`
}

// PresignResponse is the output of storage presign.
type PresignResponse struct {
	Status    Status            `json:"status,omitempty"`
	Method    string            `json:"method,omitempty"`
	URL       string            `json:"url,omitempty"`
	Headers   map[string]string `json:"headers,omitempty"`
	ExpiresAt *Timestamp        `json:"expiresAt,omitempty"`
	Messages  []Message         `json:"messages,omitempty"`
	ErrorCode StorageErrorCode  `json:"errorCode,omitempty"`
}

// UploadBeginRequest is the input of storage upload_begin.
type UploadBeginRequest struct {
	Key         string            `json:"key,omitempty"`
	ContentType string            `json:"contentType,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	ExpiresAt   *Timestamp        `json:"expiresAt,omitempty"`
	SHA256      string            `json:"sha256,omitempty"`
	Size        Int64             `json:"size,omitempty"`
}

// UploadBeginResponse is the output of storage upload_begin.
type UploadBeginResponse struct {
	Status    Status           `json:"status,omitempty"`
	UploadID  string           `json:"uploadId,omitempty"`
	Messages  []Message        `json:"messages,omitempty"`
	ErrorCode StorageErrorCode `json:"errorCode,omitempty"`
}

// UploadPartRequest is the input of storage upload_part.
type UploadPartRequest struct {
	Key        string `json:"key,omitempty"`
	UploadID   string `json:"uploadId,omitempty"`
	PartNumber int32  `json:"partNumber,omitempty"`
	Content    []byte `json:"content,omitempty"`
	SHA256     string `json:"sha256,omitempty"`
}

// UploadPartResponse is the output of storage upload_part.
type UploadPartResponse struct {
	Status    Status           `json:"status,omitempty"`
	ETag      string           `json:"etag,omitempty"`
	Messages  []Message        `json:"messages,omitempty"`
	ErrorCode StorageErrorCode `json:"errorCode,omitempty"`
}

// UploadedPart is a part stored by upload_part.
type UploadedPart struct {
	PartNumber int32  `json:"partNumber,omitempty"`
	ETag       string `json:"etag,omitempty"`
}

// UploadCompleteRequest is the input of storage upload_complete.
type UploadCompleteRequest struct {
	Key      string         `json:"key,omitempty"`
	UploadID string         `json:"uploadId,omitempty"`
	Parts    []UploadedPart `json:"parts,omitempty"`
}

// UploadCompleteResponse is the output of storage upload_complete.
type UploadCompleteResponse struct {
	Status    Status           `json:"status,omitempty"`
	Object    *Object          `json:"object,omitempty"`
	Messages  []Message        `json:"messages,omitempty"`
	ErrorCode StorageErrorCode `json:"errorCode,omitempty"`
}

// UploadAbortRequest is the input of storage upload_abort.
type UploadAbortRequest struct {
	Key      string `json:"key,omitempty"`
	UploadID string `json:"uploadId,omitempty"`
}

// UploadAbortResponse is the output of storage upload_abort.
type UploadAbortResponse struct {
	Status    Status           `json:"status,omitempty"`
	Messages  []Message        `json:"messages,omitempty"`
	ErrorCode StorageErrorCode `json:"errorCode,omitempty"`
}

// ExecuteRequest is the input of custom execute.
type ExecuteRequest struct {
	Action  string       `json:"action,omitempty"`
	Params  Params       `json:"params,omitempty"`
	Context *StepContext `json:"context,omitempty"`
}

// ExecuteResponse is the output of custom execute.
type ExecuteResponse struct {
	Status   Status    `json:"status,omitempty"`
	Result   Params    `json:"result,omitempty"`
	Messages []Message `json:"messages,omitempty"`
	Files    []File    `json:"files,omitempty"`
}

// Int64 is an int64 as protojson writes it (a quoted decimal); it reads
// both quoted and bare numbers.
type Int64 int64

// MarshalJSON writes the quoted decimal.
func (i Int64) MarshalJSON() ([]byte, error) {
	return []byte(`"` + strconv.FormatInt(int64(i), 10) + `"`), nil
}

// UnmarshalJSON reads "123" or 123.
func (i *Int64) UnmarshalJSON(b []byte) error {
	b = bytes.Trim(b, `"`)
	if string(b) == "null" {
		return nil
	}
	v, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		var f float64
		if ferr := json.Unmarshal(b, &f); ferr != nil {
			return err
		}
		v = int64(f)
	}
	*i = Int64(v)
	return nil
}

// Duration is a google.protobuf.Duration: seconds with an "s", e.g.
// "1.500s".
type Duration struct{ time.Duration }

// NewDuration returns d as a Duration.
func NewDuration(d time.Duration) *Duration { return &Duration{d} }

// MarshalJSON writes seconds with 0, 3, 6 or 9 fractional digits, as
// protojson does.
func (d Duration) MarshalJSON() ([]byte, error) {
	ns := int64(d.Duration)
	sign := ""
	if ns < 0 {
		sign, ns = "-", -ns
	}
	s := sign + strconv.FormatInt(ns/1e9, 10)
	if frac := ns % 1e9; frac != 0 {
		f := strconv.FormatInt(frac+1e9, 10)[1:] // nine digits
		for len(f) > 3 && f[len(f)-3:] == "000" {
			f = f[:len(f)-3]
		}
		s += "." + f
	}
	return []byte(`"` + s + `s"`), nil
}

// UnmarshalJSON reads "1.5s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// Timestamp is a google.protobuf.Timestamp: RFC 3339 in UTC.
type Timestamp struct{ time.Time }

// NewTimestamp returns t as a Timestamp.
func NewTimestamp(t time.Time) *Timestamp { return &Timestamp{t} }

// MarshalJSON writes RFC 3339 in UTC with 0 or 9 fractional digits.
func (t Timestamp) MarshalJSON() ([]byte, error) {
	layout := "2006-01-02T15:04:05Z"
	if t.Nanosecond() != 0 {
		layout = "2006-01-02T15:04:05.000000000Z"
	}
	return []byte(`"` + t.UTC().Format(layout) + `"`), nil
}

// UnmarshalJSON reads RFC 3339.
func (t *Timestamp) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return err
	}
	t.Time = v
	return nil
}
