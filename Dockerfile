# syntax=docker/dockerfile:1
# Build:  docker build --build-arg VERSION=$(git describe --tags --always) -t optin-server .
# The image holds two static binaries: /optin-server (the entrypoint) and /emulator.

FROM golang:1.26 AS build
WORKDIR /src
ENV CGO_ENABLED=0
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags="-s -w -X main.version=${VERSION}" -o /out/optin-server ./cmd/server && \
    go build -trimpath -ldflags="-s -w" -o /out/emulator ./cmd/emulator

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/optin-server /out/emulator /
# distroless's nonroot user; nothing is written to the filesystem, so it runs with a read-only root.
USER 65532:65532
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=5s --retries=3 \
    CMD ["/optin-server", "healthcheck"]
ENTRYPOINT ["/optin-server"]
