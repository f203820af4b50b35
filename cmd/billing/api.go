package main

import "context"

func runAPI(ctx context.Context, e env, args []string) error {
	return notYet("api")(ctx, e, args)
}
