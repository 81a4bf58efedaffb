package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// pageFlags are the paging flags of list commands.
type pageFlags struct {
	size  int32
	token string
	all   bool
}

func (p *pageFlags) register(fs *pflag.FlagSet, what string, size int32) {
	fs.Int32Var(&p.size, "page-size", size, what+" per page")
	fs.StringVar(&p.token, "page-token", "", "the page to show: the token the previous page printed")
	fs.BoolVar(&p.all, "all", false, "fetch every page")
}

// fetch calls list for the requested page, and for the next ones with
// --all; list returns the next page token.
func (p *pageFlags) fetch(list func(token string) (next string, err error)) (next string, err error) {
	token := p.token
	for {
		next, err := list(token)
		if err != nil || !p.all || next == "" {
			return next, err
		}
		token = next
	}
}

// more tells, on standard error, how to get the page after this one.
func (p *pageFlags) more(cmd *cobra.Command, w io.Writer, next, shown string) {
	if next == "" {
		return
	}
	path := strings.TrimPrefix(cmd.CommandPath(), "arcade ")
	fmt.Fprintf(w, "%s; next page: arcade %s --page-token %s (or --all for every page)\n", shown, path, next)
}
