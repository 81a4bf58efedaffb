package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/client"
)

// pki writes a CA, a server certificate for 127.0.0.1 and a client
// certificate into dir and returns their paths.
type pki struct{ ca, serverCert, serverKey, clientCert, clientKey string }

func newPKI(t *testing.T, dir string) pki {
	t.Helper()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	writeKey := func(name string, k *ecdsa.PrivateKey) string {
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return write(name, "EC PRIVATE KEY", der)
	}
	now := time.Now()
	caKey := key()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "arcade test ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, cn string, usage x509.ExtKeyUsage, ips []net.IP) ([]byte, *ecdsa.PrivateKey) {
		k := key()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: ips}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, k
	}
	sDER, sKey := issue(2, "arcade server", x509.ExtKeyUsageServerAuth, []net.IP{net.ParseIP("127.0.0.1")})
	cDER, cKey := issue(3, "arcade agent", x509.ExtKeyUsageClientAuth, nil)
	return pki{
		ca:         write("ca.pem", "CERTIFICATE", caDER),
		serverCert: write("server.pem", "CERTIFICATE", sDER), serverKey: writeKey("server-key.pem", sKey),
		clientCert: write("agent.pem", "CERTIFICATE", cDER), clientKey: writeKey("agent-key.pem", cKey),
	}
}

// TestTLSAndAgentCertificates: the server serves TLS; agents must show a
// client certificate signed by the client CA; API clients need only the CA
// and their token; plaintext clients get nowhere.
func TestTLSAndAgentCertificates(t *testing.T) {
	p := newPKI(t, t.TempDir())
	c := newClusterTLS(t, "sqlite://"+t.TempDir()+"/arcade.db", client.TLS{CAFile: p.ca},
		"--tls-cert", p.serverCert, "--tls-key", p.serverKey, "--tls-client-ca", p.ca, "--require-agent-certs")
	c.startAgentWith("trusted", 1, []string{"--tls-ca", p.ca, "--client-cert", p.clientCert, "--client-key", p.clientKey})
	j := c.create(&jobv1.CreateJobRequest{Name: "over tls", Commands: []string{"echo secure"}})
	if got := c.waitStatus(j.GetId(), success, failed); got.GetStatus() != success || got.GetAgentName() != "trusted" {
		t.Fatalf("job over TLS: %v on %q", got.GetStatus(), got.GetAgentName())
	}

	// An agent with the CA but no client certificate is refused.
	cmd := exec.Command(arcadeBin, "agent", "--server", c.addr, "--name", "stranger", "--tls-ca", p.ca,
		"--work-dir", t.TempDir(), "--config", os.DevNull)
	cmd.Env = append(os.Environ(), "ARCADE_AGENT_TOKEN="+agentToken)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "client certificate") {
		t.Errorf("agent without a client certificate: %v\n%s", err, out)
	}

	// The CLI with the CA works; without it (plaintext) it cannot talk to a TLS server.
	cli := c.cli
	if out, err := cli("job", "get", j.GetId(), "--tls-ca", p.ca); err != nil || !strings.Contains(out, "SUCCESS") {
		t.Errorf("CLI over TLS: %v\n%s", err, out)
	}
	if out, err := cli("job", "get", j.GetId()); err == nil {
		t.Errorf("a plaintext CLI reached the TLS server:\n%s", out)
	}
}
