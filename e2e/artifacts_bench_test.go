package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
)

// BenchmarkArtifactTransfer uploads a 64 MiB artifact to a server that
// keeps it through the fs-store plugin (in 4 MiB parts), then downloads
// it, on SQLite; it reports MB/s of each (b.SetBytes). Run it whole: the
// download reads what the upload stored.
func BenchmarkArtifactTransfer(b *testing.B) {
	const size = 64 << 20
	data := make([]byte, size)
	r := rand.NewChaCha8([32]byte{1})
	r.Read(data)
	sum := sha256.Sum256(data)
	c := storeCluster(b, "sqlite://"+filepath.Join(b.TempDir(), "arcade.db"), b.TempDir(), "--lease-ttl", "10m")
	agents, id := fakeAgent(b, c, "bench")
	j := c.create(&jobv1.CreateJobRequest{Name: "big", Commands: []string{"true"}, Selector: "fake=bench"})
	if f, err := agents.FetchJob(context.Background(), &agentv1.FetchJobRequest{AgentId: id, Wait: durationpb.New(5 * time.Second)}); err != nil || f.GetJob().GetId() != j.GetId() {
		b.Fatalf("lease: %v %v", f, err)
	}
	header := &agentv1.ArtifactHeader{JobId: j.GetId(), Attempt: 1, Path: "big.bin", SizeBytes: size, Sha256: hex.EncodeToString(sum[:])}
	b.Run("upload", func(b *testing.B) {
		b.SetBytes(size)
		for range b.N {
			if _, err := upload(agents, header, data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("download", func(b *testing.B) {
		b.SetBytes(size)
		for range b.N {
			got, _, err := download(c, j.GetId(), "big.bin")
			if err != nil || len(got) != size {
				b.Fatalf("download: %d bytes, %v", len(got), err)
			}
		}
	})
}
