package main

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/go-arcade/arcade/host"
	"github.com/go-arcade/arcade/host/pluginoci"
)

// newPluginPushCmd returns `plugin push`: sign a module and push it, with
// its signature, to an OCI registry.
func newPluginPushCmd() *cobra.Command {
	var (
		keyFile, dockerConfig string
		plainHTTP             bool
	)
	cmd := &cobra.Command{
		Use:   "push FILE.wasm REGISTRY/REPOSITORY:TAG [--key KEYFILE]",
		Short: "Sign a plugin module and push it, with its signature, to an OCI registry",
		Long: `Push a plugin module to an OCI registry as an artifact whose manifest holds
two layers: the module and its signature (signed here with --key, a key from
plugin keygen; without --key the module is pushed unsigned). A server loads
it with source: oci://REGISTRY/REPOSITORY:TAG in plugins.yaml, and follows
the tag when it moves.

Registry credentials come from the docker config (--docker-config, else
$DOCKER_CONFIG or ~/.docker/config.json, as docker login writes it); they are
never printed. --plain-http speaks http, for a registry on loopback.`,
		Example: `  arcade plugin push --plain-http --key plugin.key steptool.wasm 127.0.0.1:5000/arcade/steptool:stable`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			module, err := readBounded(args[0], host.DefaultMaxModuleBytes)
			if err != nil {
				return err
			}
			var sig []byte
			signer := "unsigned"
			if keyFile != "" {
				pemKey, err := os.ReadFile(keyFile)
				if err != nil {
					return err
				}
				priv, err := host.ParsePrivateKey(pemKey)
				if err != nil {
					return fmt.Errorf("%s: %w", keyFile, err)
				}
				sig = host.EncodeSignature(host.SignModule(priv, module))
				signer = "signed by " + host.EncodePublicKey(priv.Public().(ed25519.PublicKey))
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Minute)
			defer cancel()
			digest, err := pluginoci.Push(ctx, args[1], module, sig, pluginoci.Options{PlainHTTP: plainHTTP, DockerConfig: dockerConfig})
			if err != nil {
				return fmt.Errorf("push %s: %w", args[1], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "pushed %s to %s (%s), %s\n", args[0], args[1], digest, signer)
			return nil
		},
	}
	cmd.Flags().StringVar(&keyFile, "key", "", "private key file (from plugin keygen) to sign the module with")
	cmd.Flags().BoolVar(&plainHTTP, "plain-http", false, "speak http to the registry (one on loopback)")
	cmd.Flags().StringVar(&dockerConfig, "docker-config", "", "docker config.json holding registry credentials")
	return cmd
}
