package service

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/go-arcade/arcade/server/store"
)

// A full disk and a busy database reach clients as what they are, with a
// plain message: never Internal with the driver's words.
func TestStoreErrorFullAndBusy(t *testing.T) {
	for _, c := range []struct {
		err  error
		code codes.Code
		say  string
	}{
		{fmt.Errorf("create job x: %w", store.ErrStorageFull), codes.ResourceExhausted, "job: the server's database storage is full"},
		{fmt.Errorf("create job x: %w", store.ErrBusy), codes.Unavailable, "job: the database is busy with other writes; nothing was changed, retry"},
	} {
		st := grpcstatus.Convert(storeError(c.err, "job"))
		if st.Code() != c.code || !strings.HasPrefix(st.Message(), c.say) {
			t.Errorf("%v: %s %q", c.err, st.Code(), st.Message())
		}
	}
}
