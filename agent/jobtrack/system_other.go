//go:build !linux

package jobtrack

import (
	"fmt"
	"log/slog"
	"os"
)

// system holds nothing where jobs do not run (the executor runs jobs on
// Linux only): records and workspaces are still kept and swept.
type system struct{}

func newSystem(string, *slog.Logger) *system { return &system{} }

func (s *system) describe() string                { return "nothing (jobs run on Linux only)" }
func (s *system) release()                        {}
func (s *system) bootID() string                  { return "" }
func (s *system) newCgroup(string) string         { return "" }
func (s *system) addToCgroup(string, int) error   { return nil }
func (s *system) removeCgroup(string) error       { return nil }
func (s *system) sweepCgroups() (int, error)      { return 0, nil }
func (s *system) kill(*record, bool) (int, error) { return 0, nil }
func (s *system) startTicks(int) uint64           { return 0 }

func lockFolder(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("agent lock: %w", err)
	}
	return f, nil
}
