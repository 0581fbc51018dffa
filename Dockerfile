# herd's image: the static binary alone, to copy into application images.
#
#   docker build -t herd --build-arg VERSION=$(git describe --tags --always) .
#   docker run --rm -p 8080:8080 -p 9090:9090 herd      # herd's demo cluster
#
# The build stage runs on the build machine's own platform and Go
# cross-compiles for the target, so an image for another architecture
# builds natively, without emulation:
#
#   docker buildx build --platform linux/amd64,linux/arm64 -t registry.example/herd .
#
# In an application image, copy herd in and make it the ENTRYPOINT (the
# images under examples/ do this for Node, Python and Go):
#
#   FROM herd AS herd
#   FROM node:22-slim
#   COPY --from=herd /herd /usr/local/bin/herd
#   COPY server.js /app/
#   WORKDIR /app
#   USER 65532:65532
#   ENTRYPOINT ["herd", "--"]
#   CMD ["node", "server.js"]
#
# Repeat CMD after ENTRYPOINT even when the base image has one: an image
# that sets ENTRYPOINT resets the CMD it inherited to empty (Dockerfile
# reference, "Understand how CMD and ENTRYPOINT interact"), and herd with no
# command prints its usage and exits 2. Keep both in exec form (JSON): the
# shell form would make /bin/sh -c the first process, and SIGTERM would
# reach the shell instead of herd.

ARG GO_VERSION=1.26
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# The target's platform, set by the builder (BuildKit) for each --platform.
ARG TARGETOS TARGETARCH
# Static: no cgo, so the binary runs in an empty root file system and
# cross-compiles; no build paths or symbol tables in it.
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /herd .

FROM scratch
COPY --from=build /herd /herd
# Not root: the uid and gid distroless calls nonroot. Kubernetes'
# runAsNonRoot accepts a numeric USER without a runAsUser.
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["/herd"]
CMD ["demo"]
