package main

import "context"

func runDLQ(ctx context.Context, e env, args []string) error {
	return notYet("dlq")(ctx, e, args)
}
