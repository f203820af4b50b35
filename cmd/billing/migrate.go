package main

import "context"

func runMigrate(ctx context.Context, e env, args []string) error {
	return notYet("migrate")(ctx, e, args)
}
