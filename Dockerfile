# syntax=docker/dockerfile:1

# Build: a static binary, dependencies in their own cached layer.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# .git stays out of the context, so Go stamps no VCS information: pass it
# (`billing version`, billing_build_info) as
#   --build-arg VCS_REVISION=$(git rev-parse HEAD) --build-arg VCS_TIME=$(git log -1 --format=%cI)
ARG VCS_REVISION=""
ARG VCS_TIME=""
ARG BUILDINFO=github.com/stripe-billing/billing/internal/buildinfo
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X ${BUILDINFO}.revision=${VCS_REVISION} -X ${BUILDINFO}.time=${VCS_TIME}" -o /out/billing ./cmd/billing

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
