# syntax=docker/dockerfile:1
# Multi-stage build: static agentetl (engine) and orchestrator binaries on a
# minimal, non-root image. One image serves both containers of the sidecar
# pod (resources/deploy/agentetl.yaml): the entrypoint is chosen per
# container. The orchestrator finds the engine binary next to itself when
# it spawns one; in the pod it drives the engine container over HTTP.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.Version=${VERSION}" -o /out/agentetl ./cmd/agentetl \
 && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.Version=${VERSION}" -o /out/orchestrator ./cmd/orchestrator \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/agentetl /usr/local/bin/agentetl
COPY --from=build /out/orchestrator /usr/local/bin/orchestrator
COPY --from=build --chown=65532:65532 /out/data /data
COPY configs /configs
WORKDIR /data
USER 65532:65532
# 4195: engine (Benthos HTTP: streams API, /ready, /metrics); 8080: orchestrator (UI, REST API, /metrics).
EXPOSE 4195 8080
ENTRYPOINT ["/usr/local/bin/agentetl"]
CMD ["streams", "--help"]
