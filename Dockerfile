# herd as a static binary in an empty image.
#
# Use it in any image by copying the binary in:
#
#   COPY --from=herd /herd /usr/local/bin/herd
#   ENTRYPOINT ["herd", "--"]
#   CMD ["node", "server.js"]   # repeat CMD: setting ENTRYPOINT resets an inherited CMD
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /herd .

FROM scratch
COPY --from=build /herd /herd
ENTRYPOINT ["/herd", "--"]
