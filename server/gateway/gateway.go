// Package gateway serves Arcade's API over HTTP/JSON next to gRPC: the
// services are transcoded from their protos by grpc-gateway (bindings in
// api/gateway.yaml), server streams answer newline-delimited JSON, and the
// bearer token of a request is forwarded, so the gRPC server's authentication
// and scopes apply unchanged. The same listener serves artifact downloads and
// the web dashboard.
package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/encoding/protojson"

	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	pluginv1 "github.com/go-arcade/arcade/api/plugin/v1"
	secretv1 "github.com/go-arcade/arcade/api/secret/v1"
)

// Options configure the HTTP face.
type Options struct {
	// Conn reaches the gRPC services.
	Conn *grpc.ClientConn
	// Web serves every path that is not the API (the dashboard); nil: none.
	Web http.Handler
	// Mount adds more handlers by pattern (http.ServeMux syntax), e.g.
	// "/metrics".
	Mount  map[string]http.Handler
	Logger *slog.Logger
}

// NewHandler returns the handler of the HTTP listener:
//
//	/v1/…                        the API over HTTP/JSON
//	GET /artifacts/{job}/{path}  an artifact's bytes (DownloadArtifact)
//	/                            the dashboard
func NewHandler(ctx context.Context, o Options) (http.Handler, error) {
	gw := runtime.NewServeMux(
		// Field names as in the protos (job_id, not jobId), the way the
		// bindings and the CLI's YAML spell them.
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.JSONPb{
			MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true},
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: true},
		}),
	)
	// Order matters: the mux tries the handlers registered last first, and
	// a pattern without a verb (GET /v1/runs/{run_id}) also matches a path
	// with one (/v1/runs/ID:watch). The streams come after the job service
	// so their :watch and log:stream paths win; within a service the
	// generated code registers methods in the order of the proto.
	for _, svc := range []struct {
		name     string
		register func(context.Context, *runtime.ServeMux, *grpc.ClientConn) error
	}{
		{"JobService", jobv1.RegisterJobServiceHandler},
		{"AgentService", agentv1.RegisterAgentServiceHandler},
		{"PluginService", pluginv1.RegisterPluginServiceHandler},
		{"SecretService", secretv1.RegisterSecretServiceHandler},
		{"TokenService", secretv1.RegisterTokenServiceHandler},
		{"AuditService", secretv1.RegisterAuditServiceHandler},
		{"TrustService", secretv1.RegisterTrustServiceHandler},
		{"StreamService", jobv1.RegisterStreamServiceHandler},
	} {
		if err := svc.register(ctx, gw, o.Conn); err != nil {
			return nil, fmt.Errorf("gateway: register %s: %w", svc.name, err)
		}
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/", gw)
	mux.Handle("GET /artifacts/{job_id}/{path...}", artifactHandler(jobv1.NewJobServiceClient(o.Conn), o.Logger))
	for pattern, h := range o.Mount {
		mux.Handle(pattern, h)
	}
	if o.Web != nil {
		mux.Handle("/", o.Web)
	}
	return mux, nil
}

// DialInProcess connects to a gRPC server through an in-memory listener that
// srv serves from now on (it stops with the server). With serverTLS set (the
// server's credentials demand TLS), the handshake happens over the pipe and
// the server's own certificate is the only one accepted.
func DialInProcess(srv *grpc.Server, serverTLS *tls.Config) (*grpc.ClientConn, error) {
	lis := bufconn.Listen(1 << 20)
	go srv.Serve(lis) //nolint:errcheck // ends with the server
	creds := insecure.NewCredentials()
	if serverTLS != nil {
		conf, err := pinnedTLS(serverTLS)
		if err != nil {
			lis.Close()
			return nil, err
		}
		creds = credentials.NewTLS(conf)
	}
	conn, err := grpc.NewClient("passthrough:///arcade-in-process",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20)),
	)
	if err != nil {
		lis.Close()
		return nil, fmt.Errorf("gateway: connect in process: %w", err)
	}
	return conn, nil
}

// pinnedTLS trusts exactly the first certificate of serverTLS: the pipe
// reaches this process's own server, whatever names its certificate holds.
func pinnedTLS(serverTLS *tls.Config) (*tls.Config, error) {
	if len(serverTLS.Certificates) == 0 || len(serverTLS.Certificates[0].Certificate) == 0 {
		return nil, errors.New("gateway: the server's TLS settings hold no certificate")
	}
	want, err := x509.ParseCertificate(serverTLS.Certificates[0].Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("gateway: the server's certificate: %w", err)
	}
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, //nolint:gosec // replaced by the pin below
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || !cs.PeerCertificates[0].Equal(want) {
				return errors.New("gateway: in-process peer is not this server")
			}
			return nil
		},
	}, nil
}

// Serve serves h on lis (over TLS when conf is set) until ctx ends; streams
// still open then are cut after a short grace.
func Serve(ctx context.Context, lis net.Listener, h http.Handler, conf *tls.Config, log *slog.Logger) {
	// No write timeout: log and status streams stay open as long as the
	// browser reads them.
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	if conf != nil {
		// Browsers bring no client certificate.
		conf = conf.Clone()
		conf.ClientAuth, conf.ClientCAs = tls.NoClientCert, nil
		conf.NextProtos = []string{"h2", "http/1.1"}
		lis = tls.NewListener(lis, conf)
	}
	go func() {
		if err := hs.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("http listener stopped", "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if hs.Shutdown(sctx) != nil {
			hs.Close() //nolint:errcheck // streams do not end on their own
		}
	}()
}
