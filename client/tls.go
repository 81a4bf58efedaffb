package client

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// TLS says how to reach a server over TLS. The zero value means plaintext
// (loopback and trusted networks).
type TLS struct {
	// CAFile holds the certificates that sign the server's certificate;
	// empty with Enabled uses the system roots.
	CAFile string
	// CertFile and KeyFile are this client's certificate, for servers that
	// ask agents for one (mutual TLS).
	CertFile, KeyFile string
	// ServerName overrides the name checked in the server's certificate.
	ServerName string
	// Enabled turns TLS on with the system roots when no CAFile is given.
	Enabled bool
}

// On reports whether TLS is configured.
func (t TLS) On() bool { return t.Enabled || t.CAFile != "" || t.CertFile != "" }

// Option returns the dial option for t: TLS credentials, or nil for
// plaintext.
func (t TLS) Option() (grpc.DialOption, error) {
	if !t.On() {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls ca: no PEM certificate in %s", t.CAFile)
		}
		cfg.RootCAs = pool
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return nil, errors.New("tls: a client certificate needs both its cert and key files")
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return grpc.WithTransportCredentials(credentials.NewTLS(cfg)), nil
}

// DialTLS is Dial over TLS when t is configured, or when addr says
// https://.
func DialTLS(addr string, token func() string, t TLS, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	addr, secure, err := SplitScheme(addr)
	if err != nil {
		return nil, err
	}
	if secure && !t.On() {
		t.Enabled = true
	}
	opt, err := t.Option()
	if err != nil {
		return nil, err
	}
	if opt != nil {
		opts = append(opts, opt) // after Dial's plaintext default, so it wins
	}
	return Dial(addr, token, opts...)
}
