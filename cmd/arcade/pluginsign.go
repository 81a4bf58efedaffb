package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
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

	var (
		keyFile string
		all     bool
	)
	sign := &cobra.Command{
		Use:   "sign --key KEYFILE FILE.wasm... | --all [DIR...]",
		Short: "Sign plugin modules: writes NAME.wasm.sig beside each, NAME the plugin's declared name",
		Long: `Sign plugin modules with an ed25519 key (from plugin keygen).
The signature is written beside the module and named after the plugin the
module declares (go-lint.wasm.sig for a module that declares go-lint, whatever
its file is called), which is where a server looks for it. A file that is not
a loadable plugin is signed as FILE.wasm.sig. --all signs every .wasm in the
folders named (default: plugins).`,
		Example: `  arcade plugin sign --key plugin.key plugins/go-lint.wasm
  arcade plugin sign --key plugin.key --all plugins`,
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
			files := args
			if all {
				dirs := args
				if len(dirs) == 0 {
					dirs = []string{"plugins"}
				}
				files = nil
				for _, d := range dirs {
					found, err := filepath.Glob(filepath.Join(d, "*.wasm"))
					if err != nil {
						return err
					}
					files = append(files, found...)
				}
				if len(files) == 0 {
					return fmt.Errorf("--all: no .wasm in %s", strings.Join(dirs, ", "))
				}
			} else if len(files) == 0 {
				return errors.New("name the modules to sign, or --all")
			}
			runner := host.NewRunner(nil)
			defer runner.Close(context.Background())
			signer := host.EncodePublicKey(priv.Public().(ed25519.PublicKey))
			for _, f := range files {
				module, err := readBounded(f, host.DefaultMaxModuleBytes)
				if err != nil {
					return err
				}
				sigFile := f + host.SignatureExt
				if name := declaredName(cmd.Context(), runner, f, module); name != "" {
					sigFile = filepath.Join(filepath.Dir(f), name+".wasm"+host.SignatureExt)
				} else {
					fmt.Fprintf(cmd.ErrOrStderr(), "%s: not a loadable plugin; signature named after the file\n", f)
				}
				if err := os.WriteFile(sigFile, host.EncodeSignature(host.SignModule(priv, module)), 0o644); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s signed by %s\n", sigFile, signer)
			}
			return nil
		},
	}
	sign.Flags().BoolVar(&all, "all", false, "sign every .wasm in the folders named (default: plugins)")
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

// declaredName is the name the module at path declares in its metadata, ""
// when it does not load as a plugin.
func declaredName(ctx context.Context, r *host.Runner, path string, module []byte) string {
	l, err := r.Load(ctx, host.Spec{Name: strings.TrimSuffix(filepath.Base(path), ".wasm"), Path: path}, module)
	if err != nil {
		return ""
	}
	defer l.Close()
	name := l.Metadata().GetName()
	if !safeName.MatchString(name) {
		return "" // not a file name: the file's name is used
	}
	return name
}

var safeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
