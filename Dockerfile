# kdfir on distroless, as a non-root user. The event store is DuckDB, a C++
# library linked in with cgo, so the image is distroless/cc (glibc and
# libstdc++), not distroless/static.
#   docker build -t kdfir .
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=1 go build -trimpath \
    -ldflags "-s -w -X github.com/kdfir/kdfir/internal/version.Version=${VERSION}" \
    -o /out/kdfir ./cmd/kdfir

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/kdfir /usr/local/bin/kdfir
USER 65532:65532
EXPOSE 8443
ENTRYPOINT ["/usr/local/bin/kdfir"]
CMD ["serve", "--config", "/etc/kdfir/config.yaml"]
