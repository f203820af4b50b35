// Command billing is the one binary of the billing system. main only wires:
// everything runs through run, which end-to-end tests call too.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if !silent(err) {
			fmt.Fprintln(os.Stderr, "billing:", err)
		}
		os.Exit(exitCode(err))
	}
}
