//go:build !linux

package pgtest

import (
	"context"
	"errors"
)

// The throwaway cluster is implemented for Linux only.

type cluster struct{}

func startCluster(binaries) (*cluster, error) {
	return nil, errors.New("pgtest supports Linux only")
}

func (*cluster) dsn(string) string { return "" }

func (*cluster) createDatabase(context.Context, string) error { return errors.ErrUnsupported }

func (*cluster) dropDatabase(context.Context, string) error { return nil }

func (*cluster) stop() error { return nil }

func (*cluster) restart() error { return errors.ErrUnsupported }

func (*cluster) halt() {}

func (*cluster) resume() error { return errors.ErrUnsupported }

func (*cluster) directory() string { return "" }
