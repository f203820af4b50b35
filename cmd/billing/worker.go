package main

import "context"

func runWorker(ctx context.Context, e env, args []string) error {
	return notYet("worker")(ctx, e, args)
}
