package objects

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"maps"
	"slices"
	"sync"

	pluginv1 "github.com/go-arcade/arcade/api/plugin/v1"
)

// A large object is written and read in pieces. How it lies in the store
// depends on the plugin, and callers record it as a part count:
//
//	0  one object under its key: written in one save, or by a multipart
//	   upload (the multipart feature), read in ranges (ranged_load) or in
//	   one load
//	N  N objects KEY/part-000000 … (a plugin without multipart), one save
//	   and one load each
//
// A path is a regular file of the workspace, so no artifact path can start
// with another's PATH/, and part keys never collide.

// PartKey is the key of part n of an object kept in parts.
func PartKey(key string, n int) string { return fmt.Sprintf("%s/part-%06d", key, n) }

// savesInFlight is how many parts of one object are stored at once: the
// plugin's instances work in parallel while the next part arrives.
const savesInFlight = 2

// WriteOptions describe the object a Writer stores.
type WriteOptions struct {
	Meta
	// SHA256 is the whole object's digest (hex), recorded with a multipart
	// upload: the caller checks the bytes against it before Close.
	SHA256 string
	// Size is the whole object's size, 0 when unknown.
	Size int64
}

// Writer stores one object as its bytes arrive. Close stores the rest and
// says how the object lies (its part count); Abort removes what was stored,
// before or after Close.
type Writer struct {
	s        *Store
	p        Plugin
	ctx      context.Context
	key      string
	opts     WriteOptions
	multi    bool
	partSize int
	buf      []byte
	parts    int // parts started
	uploadID string
	closed   bool // Close stored the object

	slots chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	err   error
	etags map[int]string
}

// NewWriter starts writing the object key.
func (s *Store) NewWriter(ctx context.Context, key string, opts WriteOptions) *Writer {
	w := &Writer{s: s, ctx: ctx, key: key, opts: opts, slots: make(chan struct{}, savesInFlight), etags: map[int]string{}}
	p, err := s.plugin()
	if err != nil {
		w.err = err
		return w
	}
	w.p = p
	f := p.Features()
	w.multi = f.GetMultipart()
	w.partSize = s.partSizeFor(f)
	w.buf = make([]byte, 0, min(w.partSize, 1<<20))
	return w
}

func (w *Writer) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *Writer) fail(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
}

// Write buffers b, storing each full part.
func (w *Writer) Write(b []byte) (int, error) {
	if err := w.failed(); err != nil {
		return 0, err
	}
	n := len(b)
	for len(b) > 0 {
		take := min(w.partSize-len(w.buf), len(b))
		w.buf = append(w.buf, b[:take]...)
		b = b[take:]
		if len(w.buf) == w.partSize {
			if err := w.flush(); err != nil {
				return n - len(b), err
			}
		}
	}
	return n, nil
}

// flush starts storing the buffered part once a slot is free.
func (w *Writer) flush() error {
	if err := w.failed(); err != nil {
		return err
	}
	if w.multi && w.uploadID == "" {
		if err := w.begin(); err != nil {
			w.fail(err)
			return err
		}
	}
	data, n := w.buf, w.parts
	w.parts++
	w.buf = make([]byte, 0, min(w.partSize, 1<<20))
	select {
	case w.slots <- struct{}{}:
	case <-w.ctx.Done():
		return w.ctx.Err()
	}
	w.wg.Go(func() {
		defer func() { <-w.slots }()
		var err error
		if w.multi {
			err = w.uploadPart(n+1, data)
		} else {
			err = w.s.Save(w.ctx, PartKey(w.key, n), data, Meta{Expires: w.opts.Expires})
		}
		if err != nil {
			w.fail(err)
		}
	})
	return nil
}

func (w *Writer) begin() error {
	resp, err := w.p.UploadBegin(w.ctx, &pluginv1.UploadBeginRequest{Key: w.key, ContentType: w.opts.contentType(),
		Metadata: w.opts.Metadata, ExpiresAt: w.opts.expires(), Sha256: w.opts.SHA256, Size: w.opts.Size})
	if err != nil {
		return callError("upload_begin", w.key, err)
	}
	if err := failure("upload_begin", w.key, resp.GetStatus(), resp.GetErrorCode(), resp.GetMessages()); err != nil {
		return err
	}
	w.uploadID = resp.GetUploadId()
	return nil
}

func (w *Writer) uploadPart(n int, data []byte) error {
	resp, err := w.p.UploadPart(w.ctx, &pluginv1.UploadPartRequest{Key: w.key, UploadId: w.uploadID, PartNumber: int32(n),
		Content: data, Sha256: hexSHA256(data)})
	if err != nil {
		return callError("upload_part", w.key, err)
	}
	if err := failure("upload_part", w.key, resp.GetStatus(), resp.GetErrorCode(), resp.GetMessages()); err != nil {
		return err
	}
	w.mu.Lock()
	w.etags[n] = resp.GetEtag()
	w.mu.Unlock()
	return nil
}

// Close stores what is buffered, waits for every part and returns the
// object's part count (see PartKey). An object smaller than one part goes
// in one save.
func (w *Writer) Close() (int32, error) {
	if err := w.failed(); err != nil {
		w.wg.Wait()
		return 0, err
	}
	if w.multi && w.uploadID == "" {
		err := w.s.Save(w.ctx, w.key, w.buf, w.opts.Meta)
		w.closed = err == nil
		return 0, err
	}
	var err error
	if len(w.buf) > 0 || w.parts == 0 {
		err = w.flush()
	}
	w.wg.Wait()
	if err == nil {
		err = w.failed()
	}
	if err != nil {
		return 0, err
	}
	if !w.multi {
		w.closed = true
		return int32(w.parts), nil
	}
	parts := make([]*pluginv1.UploadedPart, 0, len(w.etags))
	for _, n := range slices.Sorted(maps.Keys(w.etags)) {
		parts = append(parts, &pluginv1.UploadedPart{PartNumber: int32(n), Etag: w.etags[n]})
	}
	resp, err := w.p.UploadComplete(w.ctx, &pluginv1.UploadCompleteRequest{Key: w.key, UploadId: w.uploadID, Parts: parts})
	if err != nil {
		return 0, callError("upload_complete", w.key, err)
	}
	if err := failure("upload_complete", w.key, resp.GetStatus(), resp.GetErrorCode(), resp.GetMessages()); err != nil {
		return 0, err
	}
	w.closed = true
	return 0, nil
}

// Abort waits for the parts under way and removes what was stored: the
// parts of an unfinished upload (so none is left behind), or the object
// once Close stored it.
func (w *Writer) Abort(ctx context.Context) error {
	w.wg.Wait()
	if w.p == nil {
		return nil
	}
	switch {
	case w.closed && w.multi:
		return w.s.Delete(ctx, w.key)
	case w.closed || !w.multi:
		return w.s.Remove(ctx, w.key, int32(w.parts))
	case w.uploadID != "":
		resp, err := w.p.UploadAbort(ctx, &pluginv1.UploadAbortRequest{Key: w.key, UploadId: w.uploadID})
		if err != nil {
			return callError("upload_abort", w.key, err)
		}
		return failure("upload_abort", w.key, resp.GetStatus(), resp.GetErrorCode(), resp.GetMessages())
	}
	return nil
}

// Remove removes an object of parts parts (0: one object); what is already
// gone is no error.
func (s *Store) Remove(ctx context.Context, key string, parts int32) error {
	if parts == 0 {
		return s.Delete(ctx, key)
	}
	var errs []error
	for n := range int(parts) {
		if err := s.Delete(ctx, PartKey(key, n)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Read hands the bytes of an object of parts parts (0: one object) and
// size bytes to fn in order, in pieces; the next piece is loaded while fn
// handles one. With sha256Hex set the whole is checked against it: a
// mismatch ends the read with ErrCorrupt (after fn has seen the bytes).
func (s *Store) Read(ctx context.Context, key string, parts int32, size int64, sha256Hex string, fn func([]byte) error) error {
	p, err := s.plugin()
	if err != nil {
		return err
	}
	var loads []func(context.Context) ([]byte, error)
	switch {
	case parts > 0:
		for n := range int(parts) {
			loads = append(loads, func(ctx context.Context) ([]byte, error) { return s.Load(ctx, PartKey(key, n)) })
		}
	case p.Features().GetRangedLoad() && size > ReadPieceSize:
		piece := int64(ReadPieceSize)
		for off := int64(0); off < size; off += piece {
			loads = append(loads, func(ctx context.Context) ([]byte, error) { return s.loadRange(ctx, p, key, off, min(piece, size-off)) })
		}
	default:
		loads = append(loads, func(ctx context.Context) ([]byte, error) { return s.Load(ctx, key) })
	}
	var sum hash.Hash
	if sha256Hex != "" {
		sum = sha256.New()
	}
	err = pipeline(ctx, loads, func(b []byte) error {
		if sum != nil {
			sum.Write(b)
		}
		return fn(b)
	})
	if err != nil {
		return err
	}
	if sum != nil {
		if got := hex.EncodeToString(sum.Sum(nil)); got != sha256Hex {
			return &Error{Op: "read", Key: key, Kind: ErrCorrupt, Text: fmt.Sprintf("sha256 %s, recorded %s", got, sha256Hex)}
		}
	}
	return nil
}

func (s *Store) loadRange(ctx context.Context, p Plugin, key string, off, n int64) ([]byte, error) {
	resp, err := p.Load(ctx, &pluginv1.LoadRequest{Key: key, Offset: off, Length: n})
	if err != nil {
		return nil, callError("load", key, err)
	}
	if err := failure("load", key, resp.GetStatus(), resp.GetErrorCode(), resp.GetMessages()); err != nil {
		return nil, err
	}
	if int64(len(resp.GetContent())) != n {
		return nil, &Error{Op: "load", Key: key, Kind: ErrCorrupt, Text: fmt.Sprintf("asked for %d bytes at %d, got %d", n, off, len(resp.GetContent()))}
	}
	return resp.GetContent(), nil
}

// pipeline runs the loads in order, one ahead of fn.
func pipeline(ctx context.Context, loads []func(context.Context) ([]byte, error), fn func([]byte) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type loaded struct {
		data []byte
		err  error
	}
	next := make(chan loaded, 1)
	go func() {
		defer close(next)
		for _, load := range loads {
			data, err := load(ctx)
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
	if done < len(loads) {
		return fmt.Errorf("storage read: %w", context.Cause(ctx))
	}
	return nil
}
