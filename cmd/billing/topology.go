package main

import "context"

func runTopology(ctx context.Context, e env, args []string) error {
	return notYet("topology")(ctx, e, args)
}
