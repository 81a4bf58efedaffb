// Package artifacts names job artifacts in the object store and removes
// them when they expire.
//
// An artifact is the object artifacts/JOB/ATTEMPT/PATH, kept through the
// server's storage plugin (server/objects): one object, or parts under that
// key for a plugin without multipart uploads (the part count is recorded
// with the artifact).
package artifacts

import "fmt"

// Key is the storage key of an artifact.
func Key(jobID string, attempt int32, path string) string {
	return fmt.Sprintf("artifacts/%s/%d/%s", jobID, attempt, path)
}
