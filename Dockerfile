# kdfir on distroless, as a non-root user. The event store is DuckDB, a C++
# library linked in with cgo, so the image is distroless/cc (glibc and
# libstdc++), not distroless/static.
#   docker build -t kdfir .
# Base images are pinned by digest, so a rebuild uses the bytes that were
# reviewed; refresh a pin with `docker buildx imagetools inspect IMAGE:TAG`.
FROM golang:1.26@sha256:595c7847cff97c9a9e76f015083c481d26078f961c9c8dca3923132f51fe12f1 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=1 go build -trimpath \
    -ldflags "-s -w -X github.com/kdfir/kdfir/internal/version.Version=${VERSION}" \
    -o /out/kdfir ./cmd/kdfir

FROM gcr.io/distroless/cc-debian12:nonroot@sha256:9dac0a79194e45a7da0158a9c6da57b217585af0786db3845d1f0ec1a0dd182f
COPY --from=build /out/kdfir /usr/local/bin/kdfir
USER 65532:65532
EXPOSE 8443
ENTRYPOINT ["/usr/local/bin/kdfir"]
CMD ["serve", "--config", "/etc/kdfir/config.yaml"]
