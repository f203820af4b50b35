package main

import "context"

func runSweep(ctx context.Context, e env, args []string) error {
	return notYet("sweep")(ctx, e, args)
}
