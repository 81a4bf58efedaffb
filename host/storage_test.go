package host

import (
	"testing"
)

// TestLoadChecksStorageFeatures: a storage plugin that claims a feature
// must declare (hence export) its functions, and sane part bounds; the
// face reports what it claims.
func TestLoadChecksStorageFeatures(t *testing.T) {
	t.Parallel()
	storage := func(name, features, functions string) Spec {
		s := kitchen(name)
		s.Kind = "storage"
		s.Config = map[string]string{"kind": "KIND_STORAGE", "storage": features}
		if functions != "" {
			s.Config["functions"] = functions
		}
		return s
	}
	t.Run("presign without its functions", func(t *testing.T) {
		wantRefused(t, ErrMissingFunction, "plugin p refused: missing function: storage feature presign needs function presign",
			storage("p", `{"presign":true}`, ""))
	})
	t.Run("multipart without its functions", func(t *testing.T) {
		wantRefused(t, ErrMissingFunction, "storage feature multipart needs function upload_begin",
			storage("m", `{"multipart":true,"minPartBytes":"5","maxPartBytes":"10"}`, ""))
	})
	t.Run("declared but not exported", func(t *testing.T) {
		wantRefused(t, ErrMissingFunction, "module declares presign but does not export it",
			storage("e", `{"presign":true}`, "save,load,delete,list,presign,stat"))
	})
	t.Run("features on another kind", func(t *testing.T) {
		s := kitchen("c")
		s.Config = map[string]string{"storage": `{"rangedLoad":true}`}
		wantRefused(t, ErrBadMetadata, "a custom plugin declares storage features", s)
	})
	m := mustLoad(t, storage("ranged", `{"rangedLoad":true}`, ""))
	f, err := m.GetStoragePlugin("ranged")
	if err != nil {
		t.Fatal(err)
	}
	if !f.Features().GetRangedLoad() || f.Features().GetPresign() {
		t.Errorf("features %v", f.Features())
	}
}
