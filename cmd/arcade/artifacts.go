package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/go-arcade/arcade/agent/transfer"
	agentv1 "github.com/go-arcade/arcade/api/agent/v1"
	jobv1 "github.com/go-arcade/arcade/api/job/v1"
	"github.com/go-arcade/arcade/client"
)

func newArtifactCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "artifact", Short: "List and download the artifacts of jobs"}
	cmd.AddCommand(newArtifactListCmd(), newArtifactGetCmd())
	return cmd
}

func newArtifactListCmd() *cobra.Command {
	f := &clientFlags{}
	var pages pageFlags
	cmd := &cobra.Command{
		Use: "list JOB_ID", Short: "List the artifacts of a job's latest attempt", Args: cobra.ExactArgs(1),
		RunE: f.withAPI(func(cmd *cobra.Command, args []string, c *api) error {
			resp := &jobv1.ListJobArtifactsResponse{}
			next, err := pages.fetch(func(token string) (string, error) {
				page, err := c.jobs.ListJobArtifacts(cmd.Context(), &jobv1.ListJobArtifactsRequest{JobId: args[0], PageSize: pages.size, PageToken: token})
				resp.Artifacts = append(resp.Artifacts, page.GetArtifacts()...)
				return page.GetNextPageToken(), err
			})
			if err != nil {
				return err
			}
			resp.NextPageToken = next
			defer pages.more(cmd, cmd.ErrOrStderr(), next, fmt.Sprintf("%d artifacts shown", len(resp.GetArtifacts())))
			if f.output == "json" {
				return printJSON(cmd.OutOrStdout(), resp)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PATH\tSIZE\tSHA256\tCREATED\tEXPIRES\tSTORED")
			for _, a := range resp.GetArtifacts() {
				expires := "never"
				if a.GetExpiresAt() != nil {
					expires = a.GetExpiresAt().AsTime().Local().Format(time.DateTime)
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%v\n", a.GetPath(), a.GetSizeBytes(), a.GetSha256(),
					a.GetCreatedAt().AsTime().Local().Format(time.DateTime), expires, a.GetStored())
			}
			return tw.Flush()
		}),
	}
	f.register(cmd)
	pages.register(cmd.Flags(), "artifacts", 100)
	return cmd
}

func newArtifactGetCmd() *cobra.Command {
	f := &clientFlags{output: "table"}
	var (
		out     string
		attempt int32
	)
	cmd := &cobra.Command{
		Use:   "get JOB_ID PATH",
		Short: "Download an artifact; its sha256 is checked",
		Long: `Download an artifact of a job to a file (default: its base name in the
current folder; -o - writes it to standard output). The sha256 of what
arrived is checked against the server's record; on a mismatch the file is
removed and arcade exits with an error. When the server hands out presigned
URLs (artifact_downloads: redirect, with a store that makes them) the bytes
come straight from the store, else through the server.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := dialAPI(f.server, f.apiToken(), client.TLS{CAFile: f.tlsCA})
			if err != nil {
				return err
			}
			defer c.close()
			ctx := cmd.Context()
			// A URL straight to the store when the server hands them out;
			// else (or with a server from before them) through the server.
			link, err := c.jobs.GetArtifactURL(ctx, &jobv1.GetArtifactURLRequest{JobId: args[0], Path: args[1], Attempt: attempt})
			if err != nil && status.Code(err) != codes.Unimplemented {
				return err
			}
			var stream grpc.ServerStreamingClient[jobv1.DownloadArtifactResponse]
			var first *jobv1.DownloadArtifactResponse
			art := link.GetArtifact()
			if link.GetUrl() == "" {
				if stream, err = c.jobs.DownloadArtifact(ctx, &jobv1.DownloadArtifactRequest{JobId: args[0], Path: args[1], Attempt: attempt}); err != nil {
					return err
				}
				if first, err = stream.Recv(); err != nil {
					return err
				}
				art = first.GetArtifact()
			}
			if art == nil {
				return errors.New("the server sent no artifact description")
			}
			if out == "" {
				out = path.Base(art.GetPath())
			}
			var w io.Writer = cmd.OutOrStdout()
			var tmp *os.File
			if out != "-" {
				if tmp, err = os.CreateTemp(filepath.Dir(out), ".arcade-artifact-*"); err != nil {
					return err
				}
				defer os.Remove(tmp.Name()) // after a rename, nothing to remove
				defer tmp.Close()
				w = tmp
			}
			var n int64
			var got, via string
			if link.GetUrl() != "" {
				via = "straight from the store"
				n, err = transfer.Get(ctx, transfer.Client(), &agentv1.PresignedRequest{Method: "GET", Url: link.GetUrl()}, w, art.GetSizeBytes(), art.GetSha256())
				if err != nil {
					return fmt.Errorf("artifact %s: %w", art.GetPath(), err)
				}
				got = art.GetSha256()
			} else {
				via = "through the server"
				sum := sha256.New()
				write := func(data []byte) error {
					n += int64(len(data))
					sum.Write(data)
					_, err := w.Write(data)
					return err
				}
				if err := write(first.GetData()); err != nil {
					return err
				}
				for {
					msg, err := stream.Recv()
					if errors.Is(err, io.EOF) {
						break
					}
					if err != nil {
						return err
					}
					if err := write(msg.GetData()); err != nil {
						return err
					}
				}
				got = hex.EncodeToString(sum.Sum(nil))
				if n != art.GetSizeBytes() || got != art.GetSha256() {
					return fmt.Errorf("artifact %s: received %d bytes with sha256 %s, want %d bytes with sha256 %s", art.GetPath(), n, got, art.GetSizeBytes(), art.GetSha256())
				}
			}
			if tmp != nil {
				if err := tmp.Close(); err != nil {
					return err
				}
				if err := os.Rename(tmp.Name(), out); err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "%s: %d bytes, sha256 %s (verified; %s)\n", out, n, got, via)
			}
			return nil
		},
	}
	// Connection flags without -o, which names the file here.
	fl := cmd.Flags()
	f.connFlags(fl)
	fl.StringVarP(&out, "output", "o", "", "file to write (default: the artifact's base name; - for standard output)")
	fl.Int32Var(&attempt, "attempt", 0, "attempt of the job (default: the latest that has the artifact)")
	return cmd
}
