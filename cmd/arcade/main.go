// Command arcade is Arcade's one binary: the server, the agent, both at once
// (up), and client commands for jobs and agents.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd, err := newRoot().ExecuteContextC(ctx)
	var exit exitError
	switch {
	case errors.As(err, &exit):
		os.Exit(int(exit))
	case err != nil:
		addr := ""
		if cmd != nil {
			if f := cmd.Flags().Lookup("server"); f != nil {
				addr = f.Value.String()
			}
		}
		fmt.Fprintln(os.Stderr, "arcade:", sentence(err, addr))
		os.Exit(1)
	}
}

// exitError ends the program with a status code and no message (the
// outcome was already printed, as with a job that failed).
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }
