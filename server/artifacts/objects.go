// Package artifacts keeps job artifacts as objects of the configured storage
// plugin and removes them when they expire.
//
// An artifact is stored in parts of at most PartSize bytes, under
// KEY/part-000000, KEY/part-000001, … where KEY is
// artifacts/JOB/ATTEMPT/PATH: a plugin call carries its object in memory
// (inside the sandbox, as JSON), so parts keep every call small whatever the
// artifact's size. A path is a regular file of the workspace, so no other
// artifact path can start with PATH/ and part keys never collide.
package artifacts

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pluginv1 "github.com/go-arcade/arcade/api/plugin/v1"
)

// DefaultPartSize is the size of an artifact's parts.
const DefaultPartSize = 4 << 20

// Plugin is what artifacts need of a storage plugin (host.StoragePlugin).
type Plugin interface {
	Save(ctx context.Context, in *pluginv1.SaveRequest) (*pluginv1.SaveResponse, error)
	Load(ctx context.Context, in *pluginv1.LoadRequest) (*pluginv1.LoadResponse, error)
	Delete(ctx context.Context, in *pluginv1.DeleteRequest) (*pluginv1.DeleteResponse, error)
}

// ErrNoStore is returned when no storage plugin is configured or loaded.
var ErrNoStore = errors.New("no artifact store")

// ErrCorrupt is returned for an object whose content does not match its
// recorded sha256.
var ErrCorrupt = errors.New("object is corrupt")

// Objects reads and writes objects through a storage plugin, looked up at
// each use so that a plugin swapped while the server runs is followed.
type Objects struct {
	lookup   func() (Plugin, error)
	partSize int
}

// NewObjects returns objects kept by the plugin lookup returns; partSize
// 0 means DefaultPartSize.
func NewObjects(lookup func() (Plugin, error), partSize int) *Objects {
	if partSize <= 0 {
		partSize = DefaultPartSize
	}
	return &Objects{lookup: lookup, partSize: partSize}
}

// PartSize is the most bytes one part holds.
func (o *Objects) PartSize() int { return o.partSize }

func (o *Objects) plugin() (Plugin, error) {
	if o == nil || o.lookup == nil {
		return nil, ErrNoStore
	}
	p, err := o.lookup()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoStore, err)
	}
	return p, nil
}

// Available reports why objects cannot be stored now, nil when they can.
func (o *Objects) Available() error {
	_, err := o.plugin()
	return err
}

// Key is the storage key of an artifact.
func Key(jobID string, attempt int32, path string) string {
	return fmt.Sprintf("artifacts/%s/%d/%s", jobID, attempt, path)
}

// PartKey is the key of part n of the object key.
func PartKey(key string, n int) string { return fmt.Sprintf("%s/part-%06d", key, n) }

// failed turns a response that is not SUCCESS (a fail-open plugin skipped,
// say) into an error.
func failed(op, key string, st pluginv1.Status, msgs []*pluginv1.Message) error {
	if st == pluginv1.Status_STATUS_SUCCESS {
		return nil
	}
	var texts []string
	for _, m := range msgs {
		texts = append(texts, m.GetText())
	}
	return fmt.Errorf("storage %s %s: %s %s", op, key, st, strings.Join(texts, "; "))
}

// Save stores data as the object key (one call: keep it below the plugin's
// memory limit); a zero expires keeps it until it is deleted.
func (o *Objects) Save(ctx context.Context, key string, data []byte, expires time.Time, meta map[string]string) error {
	p, err := o.plugin()
	if err != nil {
		return err
	}
	// The digest, cheap here, spares the plugin hashing in the sandbox.
	sum := sha256.Sum256(data)
	md := map[string]string{"sha256": hex.EncodeToString(sum[:])}
	for k, v := range meta {
		md[k] = v
	}
	req := &pluginv1.SaveRequest{Key: key, Content: data, ContentType: "application/octet-stream", Metadata: md}
	if !expires.IsZero() {
		req.ExpiresAt = timestamppb.New(expires)
	}
	resp, err := p.Save(ctx, req)
	if err != nil {
		return fmt.Errorf("storage save %s: %w", key, err)
	}
	return failed("save", key, resp.GetStatus(), resp.GetMessages())
}

// Load returns the content of the object key.
func (o *Objects) Load(ctx context.Context, key string) ([]byte, error) {
	p, err := o.plugin()
	if err != nil {
		return nil, err
	}
	resp, err := p.Load(ctx, &pluginv1.LoadRequest{Key: key})
	if err != nil {
		return nil, fmt.Errorf("storage load %s: %w", key, err)
	}
	if err := failed("load", key, resp.GetStatus(), resp.GetMessages()); err != nil {
		return nil, err
	}
	// Checked here, natively, where hashing is cheap (the first-party
	// store may be told not to check inside the sandbox: verify_loads).
	if want := resp.GetObject().GetSha256(); want != "" {
		sum := sha256.Sum256(resp.GetContent())
		if got := hex.EncodeToString(sum[:]); got != want {
			return nil, fmt.Errorf("storage load %s: %w: sha256 %s, recorded %s", key, ErrCorrupt, got, want)
		}
	}
	return resp.GetContent(), nil
}

// Delete removes the object key; an object already gone is no error.
func (o *Objects) Delete(ctx context.Context, key string) error {
	p, err := o.plugin()
	if err != nil {
		return err
	}
	resp, err := p.Delete(ctx, &pluginv1.DeleteRequest{Key: key})
	if err != nil {
		return fmt.Errorf("storage delete %s: %w", key, err)
	}
	return failed("delete", key, resp.GetStatus(), resp.GetMessages())
}

// DeleteParts removes the parts of an object stored in parts.
func (o *Objects) DeleteParts(ctx context.Context, key string, parts int) error {
	var errs []error
	for n := range parts {
		if err := o.Delete(ctx, PartKey(key, n)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// EachPart loads the parts of an object in order and hands each to fn; the
// next part is loaded while fn handles one.
func (o *Objects) EachPart(ctx context.Context, key string, parts int, fn func([]byte) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type loaded struct {
		data []byte
		err  error
	}
	next := make(chan loaded, 1)
	go func() {
		defer close(next)
		for n := range parts {
			data, err := o.Load(ctx, PartKey(key, n))
			select {
			case next <- loaded{data, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	done := 0
	for l := range next {
		if l.err != nil {
			return l.err
		}
		if err := fn(l.data); err != nil {
			return err
		}
		done++
	}
	if done < parts {
		return fmt.Errorf("storage load %s: %w", key, context.Cause(ctx))
	}
	return nil
}

// savesInFlight is how many parts of one object are saved at once: the
// plugin's instances work in parallel while the next part arrives.
const savesInFlight = 2

// PartWriter stores an object in parts as its bytes arrive.
type PartWriter struct {
	o       *Objects
	ctx     context.Context
	key     string
	expires time.Time
	buf     []byte
	parts   int

	slots chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	err   error
}

// NewPartWriter starts writing the object key in parts; Close stores the
// last part, Abort removes what was stored.
func (o *Objects) NewPartWriter(ctx context.Context, key string, expires time.Time) *PartWriter {
	return &PartWriter{o: o, ctx: ctx, key: key, expires: expires, buf: make([]byte, 0, min(o.partSize, 1<<20)),
		slots: make(chan struct{}, savesInFlight)}
}

// Write buffers p, storing each full part.
func (w *PartWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		room := w.o.partSize - len(w.buf)
		take := min(room, len(p))
		w.buf = append(w.buf, p[:take]...)
		p = p[take:]
		if len(w.buf) == w.o.partSize {
			if err := w.flush(); err != nil {
				return n - len(p), err
			}
		}
	}
	return n, nil
}

func (w *PartWriter) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// flush starts saving the buffered part once a slot is free.
func (w *PartWriter) flush() error {
	if err := w.failed(); err != nil {
		return err
	}
	data, n := w.buf, w.parts
	w.parts++
	w.buf = make([]byte, 0, min(w.o.partSize, 1<<20))
	select {
	case w.slots <- struct{}{}:
	case <-w.ctx.Done():
		return w.ctx.Err()
	}
	w.wg.Go(func() {
		defer func() { <-w.slots }()
		if err := w.o.Save(w.ctx, PartKey(w.key, n), data, w.expires, nil); err != nil {
			w.mu.Lock()
			if w.err == nil {
				w.err = err
			}
			w.mu.Unlock()
		}
	})
	return nil
}

// Close stores what is buffered (an empty object has one empty part), waits
// for every part to be saved and returns the number of parts.
func (w *PartWriter) Close() (int, error) {
	var err error
	if len(w.buf) > 0 || w.parts == 0 {
		err = w.flush()
	}
	w.wg.Wait()
	if err == nil {
		err = w.failed()
	}
	return w.parts, err
}

// Abort waits for the saves under way and removes the parts stored.
func (w *PartWriter) Abort(ctx context.Context) error {
	w.wg.Wait()
	return w.o.DeleteParts(ctx, w.key, w.parts)
}
