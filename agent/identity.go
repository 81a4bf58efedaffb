package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// identityFile, in the agent's data directory, keeps the id and token the
// server gave the agent, so that a restarted agent proves it is the agent
// the server knows under its name (RegisterRequest.agent_id, agent_token).
// It is written with mode 0600: the token is the agent's credential.
const identityFile = "agent-identity.json"

// identity is what the agent keeps of its registration.
type identity struct {
	Server string `json:"server"`
	Name   string `json:"name"`
	ID     string `json:"agent_id"`
	Token  string `json:"agent_token"`
}

// loadIdentity reads the identity kept in dir; a missing file is no
// identity (the zero value), not an error.
func loadIdentity(dir string) (identity, error) {
	var id identity
	b, err := os.ReadFile(filepath.Join(dir, identityFile))
	if errors.Is(err, fs.ErrNotExist) {
		return id, nil
	}
	if err != nil {
		return id, fmt.Errorf("read agent identity: %w", err)
	}
	if err := json.Unmarshal(b, &id); err != nil {
		return identity{}, fmt.Errorf("read agent identity %s: %w", filepath.Join(dir, identityFile), err)
	}
	return id, nil
}

// saveIdentity writes id to dir, mode 0600, replacing the file at once (a
// crash leaves the old identity or the new one, never half of either).
func saveIdentity(dir string, id identity) error {
	b, err := json.MarshalIndent(id, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, identityFile+".*")
	if err != nil {
		return fmt.Errorf("save agent identity: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after the rename there is nothing to remove
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("save agent identity: %w", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("save agent identity: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("save agent identity: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("save agent identity: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, identityFile)); err != nil {
		return fmt.Errorf("save agent identity: %w", err)
	}
	return nil
}
