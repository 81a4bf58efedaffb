package service

import (
	"encoding/base64"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/go-arcade/arcade/core/jobimage"
	"github.com/go-arcade/arcade/core/labels"
	"github.com/go-arcade/arcade/server/store"
)

// invalid answers InvalidArgument naming the field.
func invalid(field, format string, args ...any) error {
	return grpcstatus.Errorf(codes.InvalidArgument, "%s: %s", field, fmt.Sprintf(format, args...))
}

// selectorError turns a labels.FieldError into InvalidArgument under prefix.
func selectorError(prefix string, err error) error {
	var fe *labels.FieldError
	if errors.As(err, &fe) {
		field := fe.Field
		if prefix != "" && field != prefix {
			field = prefix + "." + field
		}
		return grpcstatus.Errorf(codes.InvalidArgument, "%s: %s", field, fe.Reason)
	}
	return grpcstatus.Errorf(codes.InvalidArgument, "%s: %v", prefix, err)
}

// imageError turns a jobimage.Error into InvalidArgument naming the field.
func imageError(err error) error {
	var ie *jobimage.Error
	if errors.As(err, &ie) {
		return invalid(ie.Field, "%s", ie.Reason)
	}
	return grpcstatus.Errorf(codes.InvalidArgument, "%v", err)
}

func requireID(field, v string) error {
	if strings.TrimSpace(v) == "" {
		return invalid(field, "must not be empty")
	}
	return nil
}

func validateEnv(env map[string]string) error {
	for k := range env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return invalid(fmt.Sprintf("env[%q]", k), "not a valid variable name")
		}
	}
	return nil
}

func validateArtifactPaths(paths []string) error {
	for i, p := range paths {
		field := fmt.Sprintf("artifacts.paths[%d]", i)
		switch {
		case strings.TrimSpace(p) == "":
			return invalid(field, "must not be empty")
		case path.IsAbs(p):
			return invalid(field, "must be relative to the job workspace, got %q", p)
		case p == ".." || strings.HasPrefix(p, "../") || strings.Contains(p, "/../"):
			return invalid(field, "must stay inside the job workspace, got %q", p)
		}
		if _, err := path.Match(p, ""); err != nil {
			return invalid(field, "bad pattern %q: %v", p, err)
		}
	}
	return nil
}

const (
	defaultPageSize = 50
	maxPageSize     = 1000
)

// page reads page_size, page_token and order_by.
func page(size int32, token, orderBy string, columns []string, def store.Order) (store.Page, error) {
	if size < 0 {
		return store.Page{}, invalid("page_size", "must not be negative, got %d", size)
	}
	limit := int(size)
	if limit == 0 {
		limit = defaultPageSize
	}
	limit = min(limit, maxPageSize)
	offset := 0
	if token != "" {
		raw, err := base64.RawURLEncoding.DecodeString(token)
		n, convErr := strconv.Atoi(strings.TrimPrefix(string(raw), "o:"))
		if err != nil || convErr != nil || !strings.HasPrefix(string(raw), "o:") || n < 0 {
			return store.Page{}, invalid("page_token", "not a token this server issued")
		}
		offset = n
	}
	order, err := store.ParseOrder(orderBy, columns, def)
	if err != nil {
		return store.Page{}, invalid("order_by", "%v", err)
	}
	return store.Page{Offset: offset, Limit: limit, Order: order}, nil
}

// nextToken returns the token of the page after p, or "" after the last.
func nextToken(p store.Page, got, total int) string {
	next := p.Offset + got
	if got == 0 || next >= total {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte("o:" + strconv.Itoa(next)))
}
