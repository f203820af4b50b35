# syntax=docker/dockerfile:1

# Build: a static binary, dependencies in their own cached layer.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/billing ./cmd/billing

# Runtime: alpine for sh (the sweep loop) and wget (health checks).
FROM alpine:3.22
RUN apk add --no-cache ca-certificates tzdata \
    && addgroup -S billing \
    && adduser -S -G billing -H -s /sbin/nologin billing
COPY --from=build /out/billing /usr/local/bin/billing
USER billing
EXPOSE 8080 9090
ENTRYPOINT ["billing"]
CMD ["--help"]
