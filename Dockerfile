# syntax=docker/dockerfile:1
# Multi-stage build: a static agentetl binary on a minimal, non-root image.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.Version=${VERSION}" -o /out/agentetl ./cmd/agentetl \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/agentetl /usr/local/bin/agentetl
COPY --from=build --chown=65532:65532 /out/data /data
COPY configs /configs
WORKDIR /data
USER 65532:65532
EXPOSE 4195
ENTRYPOINT ["/usr/local/bin/agentetl"]
CMD ["streams", "--help"]
