package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"

	grpcstatus "google.golang.org/grpc/status"

	"github.com/go-arcade/arcade/agent/cache"
	"github.com/go-arcade/arcade/agent/executor"
	"github.com/go-arcade/arcade/agent/transfer"
	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	"github.com/go-arcade/arcade/core/expr"
	"github.com/go-arcade/arcade/internal/confine"
)

// The cache phases: restore (before the steps: the entry of the job's key,
// else of its first restore key with one, from the agent's local copy when
// it has it, else from the store) and save (after the steps succeeded,
// when the key did not hit and the run may write). A cache that cannot be
// reached or saved is a miss, said in the log; an entry that holds an
// unsafe name or link, or whose bytes are not those it was saved as, fails
// the job.

// agentContext is what the agent's expressions (cache keys) read.
type agentContext struct {
	job *agentv1.Job
	env map[string]string
	ws  *confine.Dir
}

func (c agentContext) Lookup(p []string) (expr.Value, bool) {
	name := strings.Join(p, ".")
	switch name {
	case "arcade.os":
		return expr.Str(runtime.GOOS), true
	case "arcade.arch":
		return expr.Str(runtime.GOARCH), true
	}
	if len(p) == 2 && p[0] == "env" {
		v, ok := c.env[p[1]]
		return expr.Str(v), ok
	}
	v, ok := c.job.GetContext()[name]
	return expr.Str(v), ok
}

func (c agentContext) HashFiles(patterns []string) (string, error) {
	return cache.HashFiles(c.ws, patterns)
}

func fillKey(s string, c expr.Context) (string, error) {
	t, err := expr.ParseTemplate(s)
	if err != nil {
		return "", err
	}
	return t.Eval(c)
}

func cacheRestorePhase(ctx context.Context, a *Agent, r *jobRun) phaseResult {
	cfg := r.job.GetCache()
	if cfg == nil {
		return phaseResult{}
	}
	ws, err := confine.Open(r.ws)
	if err != nil {
		return failPhase(fmt.Errorf("open workspace: %w", err))
	}
	defer ws.Close()
	ec := agentContext{job: r.job, env: r.env, ws: ws}
	key, err := fillKey(cfg.GetKey(), ec)
	if err != nil {
		return failPhase(fmt.Errorf("cache.key: %w", err))
	}
	var restore []string
	for i, k := range cfg.GetRestoreKeys() {
		rk, err := fillKey(k, ec)
		if err != nil {
			return failPhase(fmt.Errorf("cache.restore_keys[%d]: %w", i, err))
		}
		restore = append(restore, rk)
	}
	r.cacheKey = key
	began := time.Now()
	resp, err := a.rpc.LookupCache(ctx, &agentv1.LookupCacheRequest{JobId: r.job.GetId(), Attempt: r.job.GetAttempt(), Key: key, RestoreKeys: restore})
	if err != nil {
		if ctx.Err() != nil {
			return phaseResult{res: &executor.Result{Outcome: executor.Cancelled, ExitCode: -1, Err: context.Cause(ctx)}}
		}
		r.note("cache not restored (key %s): %s", key, grpcstatus.Convert(err).Message())
		return phaseResult{}
	}
	e := resp.GetEntry()
	if e == nil {
		r.note("cache miss: no entry for key %s", key)
		return phaseResult{}
	}
	f, from, err := a.cacheEntry(ctx, r, e)
	if err != nil {
		if ctx.Err() != nil {
			return phaseResult{res: &executor.Result{Outcome: executor.Cancelled, ExitCode: -1, Err: context.Cause(ctx)}}
		}
		r.note("cache not restored (key %s): %v", e.GetKey(), err)
		return phaseResult{}
	}
	defer f.Close()
	h := cache.NewHashingReader(f)
	st, err := cache.Unpack(ws, h)
	if err == nil {
		_, err = io.Copy(io.Discard, h)
	}
	if err == nil && h.Sum() != e.GetSha256() {
		err = fmt.Errorf("sha256 mismatch: the entry hashes to %s, it was saved as %s", h.Sum(), e.GetSha256())
		os.Remove(a.caches.Path(e.GetSha256()))
	}
	if err != nil {
		var ue *cache.UnsafeError
		if errors.As(err, &ue) {
			r.note("cache entry %s (key %s) refused: %s", e.GetId(), e.GetKey(), ue.Error())
		}
		return phaseResult{res: &executor.Result{Outcome: executor.Failed, ExitCode: -1, Err: err},
			message: fmt.Sprintf("cache restore: key %s: %v", e.GetKey(), err)}
	}
	r.cacheHit = resp.GetExact()
	how := "restore key"
	if resp.GetExact() {
		how = "exact key"
	}
	r.note("cache restored: key %s (%s, branch %s) from %s: %d files, %s (%s compressed) in %s",
		e.GetKey(), how, e.GetBranch(), from, st.Files, humanBytes(st.Bytes), humanBytes(e.GetSizeBytes()), time.Since(began).Round(time.Millisecond))
	return phaseResult{}
}

// cacheEntry opens the archive of e: the agent's local copy, else a new
// one downloaded (straight from the store through a presigned GET when
// the server gave one) and checked against its size and sha256.
func (a *Agent) cacheEntry(ctx context.Context, r *jobRun, e *agentv1.CacheEntry) (*os.File, string, error) {
	if f, ok := a.caches.Open(e.GetSha256(), e.GetSizeBytes()); ok {
		return f, "the agent's local copy", nil
	}
	tmp, err := a.caches.Create()
	if err != nil {
		return nil, "", err
	}
	from := "the server"
	if dl := e.GetDownload(); dl != nil {
		from = "the store"
		_, err = transfer.Get(ctx, httpClient(), dl, tmp, e.GetSizeBytes(), e.GetSha256())
	} else {
		err = a.downloadCache(ctx, r, e, tmp)
	}
	if err != nil {
		a.caches.Discard(tmp)
		return nil, "", err
	}
	if !a.caches.Fits(e.GetSizeBytes()) {
		// No local copy, or the entry is larger than it: read the download
		// once.
		f, err := a.caches.Transient(tmp)
		return f, from, err
	}
	if err := a.caches.Keep(tmp, e.GetSha256()); err != nil {
		return nil, "", err
	}
	f, ok := a.caches.Open(e.GetSha256(), e.GetSizeBytes())
	if !ok {
		// Kept nothing (no room): read what was downloaded once more.
		return nil, "", errors.New("the entry could not be kept on the agent")
	}
	return f, from, nil
}

// downloadCache streams an entry through the server into w, checking it.
func (a *Agent) downloadCache(ctx context.Context, r *jobRun, e *agentv1.CacheEntry, w io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := a.rpc.DownloadCache(ctx, &agentv1.DownloadCacheRequest{JobId: r.job.GetId(), Attempt: r.job.GetAttempt(), EntryId: e.GetId()})
	if err != nil {
		return err
	}
	n, got, err := receive(func() ([]byte, error) {
		msg, err := stream.Recv()
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, errors.New(grpcstatus.Convert(err).Message())
		}
		return msg.GetData(), err
	}, w, e.GetSizeBytes())
	if err != nil {
		return err
	}
	if n != e.GetSizeBytes() || got != e.GetSha256() {
		return fmt.Errorf("sha256 mismatch: %d bytes hashing to %s, the entry was saved as %d bytes, %s", n, got, e.GetSizeBytes(), e.GetSha256())
	}
	return nil
}

func cacheSavePhase(ctx context.Context, a *Agent, r *jobRun) phaseResult {
	cfg := r.job.GetCache()
	switch {
	case cfg == nil || r.cacheKey == "":
		return phaseResult{}
	case r.cacheHit:
		r.note("cache not saved: key %s was restored as it is", r.cacheKey)
		return phaseResult{}
	case r.job.GetCacheReadOnly():
		r.note("cache not saved: a run of untrusted origin writes no shared cache")
		return phaseResult{}
	}
	began := time.Now()
	ws, err := confine.OpenReadOnly(r.ws)
	if err != nil {
		r.note("cache not saved: %v", err)
		return phaseResult{}
	}
	defer ws.Close()
	tmp, err := a.caches.Create()
	if err != nil {
		r.note("cache not saved: %v", err)
		return phaseResult{}
	}
	h := sha256.New()
	st, err := cache.Pack(ws, cfg.GetPaths(), io.MultiWriter(tmp, h), func(s string) { r.note("%s", s) })
	if err != nil {
		a.caches.Discard(tmp)
		r.note("cache not saved: %v", err)
		return phaseResult{}
	}
	if st.Files+st.Links == 0 {
		a.caches.Discard(tmp)
		r.note("cache not saved: its paths (%s) hold no file", strings.Join(cfg.GetPaths(), ", "))
		return phaseResult{}
	}
	size, err := tmp.Seek(0, io.SeekCurrent)
	if err != nil {
		a.caches.Discard(tmp)
		return phaseResult{}
	}
	sum := hex.EncodeToString(h.Sum(nil))
	header := &agentv1.CacheHeader{JobId: r.job.GetId(), Attempt: r.job.GetAttempt(), Key: r.cacheKey, SizeBytes: size, Sha256: sum}
	how, err := a.saveCache(context.WithoutCancel(ctx), header, tmp)
	if err != nil {
		a.caches.Discard(tmp)
		r.note("cache not saved: key %s: %s", r.cacheKey, grpcstatus.Convert(err).Message())
		return phaseResult{}
	}
	if err := a.caches.Keep(tmp, sum); err != nil {
		r.log.Warn("keep a local copy of a cache entry", "err", err)
	}
	r.note("cache saved: key %s: %d files, %s (%s compressed, through %s) in %s", r.cacheKey, st.Files, humanBytes(st.Bytes), humanBytes(size), how, time.Since(began).Round(time.Millisecond))
	return phaseResult{}
}

// saveCache sends an entry's archive: straight to the store when the
// server hands out a presigned PUT, else through the server.
func (a *Agent) saveCache(ctx context.Context, h *agentv1.CacheHeader, f *os.File) (string, error) {
	begin, err := a.rpc.BeginCacheSave(ctx, &agentv1.BeginCacheSaveRequest{Header: h})
	if err != nil {
		return "", err
	}
	if begin.GetTransfer() == agentv1.ArtifactTransfer_ARTIFACT_TRANSFER_DIRECT {
		if err := transfer.Put(ctx, httpClient(), begin.GetUpload(), io.NewSectionReader(f, 0, h.GetSizeBytes()), h.GetSizeBytes()); err != nil {
			return "", err
		}
		_, err := a.rpc.FinishCacheSave(ctx, &agentv1.FinishCacheSaveRequest{Header: h, EntryId: begin.GetEntryId()})
		return "the store", err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := a.rpc.SaveCache(ctx)
	if err != nil {
		return "", err
	}
	if err := stream.Send(&agentv1.SaveCacheRequest{Part: &agentv1.SaveCacheRequest_Header{Header: h}}); err != nil {
		_, err := stream.CloseAndRecv()
		return "", err
	}
	buf := make([]byte, uploadChunk)
	rd := io.NewSectionReader(f, 0, h.GetSizeBytes())
	for {
		n, rerr := io.ReadFull(rd, buf)
		if n > 0 {
			if err := stream.Send(&agentv1.SaveCacheRequest{Part: &agentv1.SaveCacheRequest_Data{Data: buf[:n]}}); err != nil {
				_, err := stream.CloseAndRecv()
				return "", err
			}
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			break
		}
		if rerr != nil {
			return "", rerr
		}
	}
	_, err = stream.CloseAndRecv()
	return "the server", err
}
