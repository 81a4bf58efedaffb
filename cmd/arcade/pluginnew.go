package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/go-arcade/arcade/internal/scaffold"
)

func newPluginNewCmd() *cobra.Command {
	var kind, lang, dir string
	cmd := &cobra.Command{
		Use:   "new NAME --kind KIND [--lang go|c|assemblyscript] [--dir DIR]",
		Short: "Write a new plugin project that builds and tests itself (make test)",
		Long: `New writes a plugin project into DIR (default: ./NAME): the plugin of the kind,
a test that runs the built module through 'arcade plugin run', a Makefile, and
the PDK's source (carried by this binary) beside it, so 'make test' needs Go
and arcade on PATH (or ARCADE=/path/to/arcade) and nothing else: no module
proxy, no copy of Arcade's repository. --lang c writes a C plugin (ci and
custom) with arcade.h, built with clang and wasi-libc; --lang assemblyscript a
custom plugin built with npm's assemblyscript 0.28.20; both tested by test.sh.

Kinds: ` + strings.Join(scaffold.Kinds, ", ") + `. Languages: ` + strings.Join(scaffold.Langs, ", ") + `.`,
		Example: `  arcade plugin new check-files --kind ci
  arcade plugin new c-check --kind ci --lang c`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if dir == "" {
				dir = args[0]
			}
			written, err := scaffold.Write(dir, scaffold.Options{Name: args[0], Kind: kind, Lang: lang})
			if err != nil {
				return err
			}
			n := 0
			for _, p := range written {
				if !strings.HasPrefix(p, "pdk/") {
					fmt.Fprintln(cmd.OutOrStdout(), filepath.Join(dir, p))
				} else {
					n++
				}
			}
			if n > 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "%s (the PDK, %d files)\n", filepath.Join(dir, "pdk"), n)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "next: cd %s && make test\n", dir)
			return nil
		},
	}
	cmd.Flags().StringVar(&kind, "kind", "", "the plugin's kind: "+strings.Join(scaffold.Kinds, ", "))
	cmd.Flags().StringVar(&lang, "lang", "go", "the language: "+strings.Join(scaffold.Langs, ", "))
	cmd.Flags().StringVar(&dir, "dir", "", "where to write the project (default: ./NAME)")
	return cmd
}
