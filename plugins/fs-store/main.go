//go:build wasip1

// Command fs-store is a storage plugin that keeps objects in a granted
// folder, each with its metadata: size, sha256, content type, creation and
// expiry time, and free-form metadata.
//
// config: root (the folder inside the sandbox, default /store; grant it
// read-write), default_ttl (a Go duration applied when a save sets no
// expiry, e.g. 720h; default none), verify_loads ("false" skips checking an
// object's sha256 on load, for a caller that checks it itself; default
// "true").
//
// Hashing runs at about 15 MB/s inside the sandbox: a caller that knows the
// content's sha256 may give it as metadata "sha256" (64 hex digits) and it
// is recorded as given instead of computed.
//
// Layout under root: objects/KEY holds the content, meta/KEY.json the
// metadata. Keys are slash-separated relative paths without "." or ".."
// segments. An expired object is gone: load and list do not return it, and
// load deletes it.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"mime"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/go-arcade/arcade/pdk"
)

var meta = pdk.Metadata{
	Name:        "fs-store",
	Kind:        pdk.KindStorage,
	Version:     "1.0.0",
	Description: "objects with metadata under a granted folder",
	Capabilities: &pdk.Capabilities{
		AllowedPaths: []pdk.PathGrant{{GuestPath: "/store"}},
		ConfigKeys:   []string{"root", "default_ttl", "verify_loads"},
	},
}

//go:wasmexport metadata
func metadata() int32 { return pdk.Describe(meta) }

// save and load: see content.go.

//go:wasmexport delete
func del() int32 { return pdk.Handle(runDelete) }

//go:wasmexport list
func list() int32 { return pdk.Handle(runList) }

func main() {}

func root() string { return pdk.ConfigOr("root", "/store") }

func objectPath(key string) string { return filepath.Join(root(), "objects", filepath.FromSlash(key)) }
func metaPath(key string) string {
	return filepath.Join(root(), "meta", filepath.FromSlash(key)+".json")
}

func checkKey(key string) error {
	if key == "" {
		return errors.New("fs-store: empty key")
	}
	if strings.HasPrefix(key, "/") || strings.ContainsAny(key, "\\\x00") || strings.HasSuffix(key, "/") {
		return fmt.Errorf("fs-store: invalid key %q", key)
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("fs-store: invalid key %q (empty, . or .. segment)", key)
		}
	}
	return nil
}

func writeAtomic(p string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

func runSave(r *pdk.SaveRequest) (*pdk.SaveResponse, error) {
	if err := checkKey(r.Key); err != nil {
		return nil, err
	}
	content := r.Content
	if r.SourcePath != "" {
		b, err := os.ReadFile(r.SourcePath)
		if err != nil {
			return nil, fmt.Errorf("fs-store: source: %w", err)
		}
		content = b
	}
	digest := strings.ToLower(r.Metadata["sha256"])
	if b, err := hex.DecodeString(digest); err != nil || len(b) != sha256.Size {
		sum := sha256.Sum256(content)
		digest = hex.EncodeToString(sum[:])
	}
	now := time.Now().UTC().Truncate(time.Second)
	obj := &pdk.Object{Key: r.Key, Size: pdk.Int64(len(content)), SHA256: digest,
		ContentType: r.ContentType, Metadata: r.Metadata, CreatedAt: pdk.NewTimestamp(now), ExpiresAt: r.ExpiresAt}
	if obj.ContentType == "" {
		name := r.Key
		if r.SourcePath != "" {
			name = r.SourcePath
		}
		obj.ContentType = mime.TypeByExtension(path.Ext(name))
		if obj.ContentType == "" {
			obj.ContentType = "application/octet-stream"
		}
	}
	if obj.ExpiresAt == nil {
		if ttl := pdk.ConfigOr("default_ttl", ""); ttl != "" {
			d, err := time.ParseDuration(ttl)
			if err != nil {
				return nil, fmt.Errorf("fs-store: config default_ttl: %w", err)
			}
			obj.ExpiresAt = pdk.NewTimestamp(now.Add(d))
		}
	}
	if err := writeAtomic(objectPath(r.Key), content); err != nil {
		return nil, fmt.Errorf("fs-store: save %s: %w", r.Key, err)
	}
	mb, _ := json.Marshal(obj)
	if err := writeAtomic(metaPath(r.Key), mb); err != nil {
		return nil, fmt.Errorf("fs-store: save %s: %w", r.Key, err)
	}
	return &pdk.SaveResponse{Status: pdk.StatusSuccess, Object: obj}, nil
}

// stat returns an object's metadata, nil when there is none or it expired
// (an expired object is deleted).
func stat(key string) (*pdk.Object, error) {
	b, err := os.ReadFile(metaPath(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var obj pdk.Object
	if err := json.Unmarshal(b, &obj); err != nil {
		return nil, fmt.Errorf("metadata of %s: %w", key, err)
	}
	if obj.ExpiresAt != nil && !obj.ExpiresAt.After(time.Now()) {
		_, _ = remove(key)
		return nil, nil
	}
	return &obj, nil
}

func runLoad(r *pdk.LoadRequest) (*pdk.LoadResponse, error) {
	if err := checkKey(r.Key); err != nil {
		return nil, err
	}
	obj, err := stat(r.Key)
	if err != nil {
		return nil, fmt.Errorf("fs-store: load %s: %w", r.Key, err)
	}
	if obj == nil {
		return &pdk.LoadResponse{Status: pdk.StatusError, ErrorCode: pdk.StorageNotFound,
			Messages: []pdk.Message{{Severity: pdk.SeverityMedium, Text: "fs-store: no object " + r.Key}}}, nil
	}
	content, err := os.ReadFile(objectPath(r.Key))
	if err != nil {
		return nil, fmt.Errorf("fs-store: load %s: %w", r.Key, err)
	}
	if pdk.ConfigOr("verify_loads", "true") != "false" {
		sum := sha256.Sum256(content)
		if got := hex.EncodeToString(sum[:]); got != obj.SHA256 {
			return nil, fmt.Errorf("fs-store: object %s is corrupt: sha256 %s, recorded %s", r.Key, got, obj.SHA256)
		}
	}
	resp := &pdk.LoadResponse{Status: pdk.StatusSuccess, Object: obj}
	if r.TargetPath != "" {
		if err := writeAtomic(r.TargetPath, content); err != nil {
			return nil, fmt.Errorf("fs-store: load %s to %s: %w", r.Key, r.TargetPath, err)
		}
	} else {
		resp.Content = content
	}
	return resp, nil
}

func remove(key string) (bool, error) {
	err := os.Remove(objectPath(key))
	existed := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	if err := os.Remove(metaPath(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return existed, err
	}
	return existed, nil
}

func runDelete(r *pdk.DeleteRequest) (*pdk.DeleteResponse, error) {
	if err := checkKey(r.Key); err != nil {
		return nil, err
	}
	deleted, err := remove(r.Key)
	if err != nil {
		return nil, fmt.Errorf("fs-store: delete %s: %w", r.Key, err)
	}
	return &pdk.DeleteResponse{Status: pdk.StatusSuccess, Deleted: deleted}, nil
}

func runList(r *pdk.ListRequest) (*pdk.ListResponse, error) {
	size := int(r.PageSize)
	if size <= 0 || size > 1000 {
		size = 100
	}
	base := filepath.Join(root(), "meta")
	var keys []string
	err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p == base {
			return filepath.SkipDir
		}
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(p, ".json") {
			return nil
		}
		rel, _ := filepath.Rel(base, p)
		key := strings.TrimSuffix(filepath.ToSlash(rel), ".json")
		if strings.HasPrefix(key, r.Prefix) && key > r.PageToken {
			keys = append(keys, key)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("fs-store: list: %w", err)
	}
	slices.Sort(keys)
	resp := &pdk.ListResponse{Status: pdk.StatusSuccess}
	for _, k := range keys {
		if len(resp.Objects) == size {
			resp.NextPageToken = resp.Objects[len(resp.Objects)-1].Key
			break
		}
		obj, err := stat(k)
		if err != nil {
			return nil, fmt.Errorf("fs-store: list: %w", err)
		}
		if obj != nil {
			resp.Objects = append(resp.Objects, *obj)
		}
	}
	return resp, nil
}
