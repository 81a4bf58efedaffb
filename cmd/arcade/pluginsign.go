package main

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/go-arcade/arcade/host"
)

// newPluginSignCmds returns the local plugin signing commands: keygen, sign
// and verify. They need no server.
func newPluginSignCmds() []*cobra.Command {
	var out string
	keygen := &cobra.Command{
		Use:   "keygen --out KEYFILE",
		Short: "Create an ed25519 signing key (KEYFILE, mode 0600) and print its public key",
		Long: `Create an ed25519 signing key for plugins.

The private key is written to KEYFILE (PEM, PKCS #8, mode 0600; an existing
file is not overwritten) and the public key, in base64, to KEYFILE.pub and to
standard output: list it under trusted_keys in plugins.yaml.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("--out is required")
			}
			pub, priv, err := host.GenerateKey()
			if err != nil {
				return err
			}
			pemKey, err := host.MarshalPrivateKey(priv)
			if err != nil {
				return err
			}
			f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return err
			}
			if _, err := f.Write(pemKey); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			encoded := host.EncodePublicKey(pub)
			if err := os.WriteFile(out+".pub", []byte(encoded+"\n"), 0o644); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), encoded)
			return nil
		},
	}
	keygen.Flags().StringVar(&out, "out", "", "private key file to create")

	var keyFile string
	sign := &cobra.Command{
		Use:   "sign --key KEYFILE FILE.wasm",
		Short: "Sign a plugin module: writes FILE.wasm.sig",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if keyFile == "" {
				return errors.New("--key is required")
			}
			pemKey, err := os.ReadFile(keyFile)
			if err != nil {
				return err
			}
			priv, err := host.ParsePrivateKey(pemKey)
			if err != nil {
				return fmt.Errorf("%s: %w", keyFile, err)
			}
			module, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			sigFile := args[0] + host.SignatureExt
			if err := os.WriteFile(sigFile, host.EncodeSignature(host.SignModule(priv, module)), 0o644); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s signed by %s\n", sigFile, host.EncodePublicKey(priv.Public().(ed25519.PublicKey)))
			return nil
		},
	}
	sign.Flags().StringVar(&keyFile, "key", "", "private key file (from plugin keygen)")

	var pubArg, sigArg string
	verify := &cobra.Command{
		Use:   "verify --pub PUBKEY FILE.wasm",
		Short: "Check a plugin module's signature (FILE.wasm.sig) against a public key",
		Long: `Check a plugin module's signature against a public key.

PUBKEY is a base64 public key or a file holding one (such as KEYFILE.pub).
The exit status is 0 when the signature is valid.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if pubArg == "" {
				return errors.New("--pub is required")
			}
			pub, err := readPublicKey(pubArg)
			if err != nil {
				return err
			}
			module, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			sigFile := sigArg
			if sigFile == "" {
				sigFile = args[0] + host.SignatureExt
			}
			data, err := os.ReadFile(sigFile)
			if errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("%s: unsigned (no %s)", args[0], sigFile)
			}
			if err != nil {
				return err
			}
			sig, err := host.ParseSignature(data)
			if err != nil {
				return fmt.Errorf("%s: %w", sigFile, err)
			}
			if err := host.VerifyModule(module, sig, pub); err != nil {
				return fmt.Errorf("%s: %w: not signed by this key, or the module changed after signing", args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: good signature by %s\n", args[0], host.EncodePublicKey(pub))
			return nil
		},
	}
	verify.Flags().StringVar(&pubArg, "pub", "", "public key: base64, or a file holding it")
	verify.Flags().StringVar(&sigArg, "sig", "", "signature file (default FILE.wasm.sig)")
	return []*cobra.Command{keygen, sign, verify}
}

// readPublicKey takes a base64 key, or else a file holding one.
func readPublicKey(arg string) (ed25519.PublicKey, error) {
	if pub, err := host.ParsePublicKey(arg); err == nil {
		return pub, nil
	}
	data, err := os.ReadFile(arg)
	if err != nil {
		return nil, fmt.Errorf("--pub: %q is neither a base64 ed25519 public key nor a readable file", arg)
	}
	pub, err := host.ParsePublicKey(strings.TrimSpace(string(data)))
	if err != nil {
		return nil, fmt.Errorf("--pub %s: %w", arg, err)
	}
	return pub, nil
}
