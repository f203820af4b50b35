.PHONY: test build

# All tests against a real MySQL and RabbitMQ. scripts/deps-up.sh starts them
# with docker compose when they do not already answer on 127.0.0.1.
test:
	bash scripts/deps-up.sh go test -count=1 -timeout 10m ./...

build:
	go build -o bin/billing ./cmd/billing
