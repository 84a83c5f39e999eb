# syntax=docker/dockerfile:1
#
# spfmilter container image: a static binary on a minimal, shell-less,
# non-root runtime image.
#
#   docker build -t spfmilter .
#   buildah bud --format docker -t spfmilter .   # --format docker keeps HEALTHCHECK
#
# Both base images are build arguments so that a mirror or a pinned digest can
# be used instead of the public defaults.
ARG GO_IMAGE=golang:1.26-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot

FROM ${GO_IMAGE} AS build
WORKDIR /src
ENV CGO_ENABLED=0
# Modules first, so that a change to the sources reuses this layer.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -buildvcs=false \
        -ldflags "-s -w -X main.version=${VERSION}" \
        -o /out/spfmilter .

FROM ${RUNTIME_IMAGE}
COPY --from=build /out/spfmilter /spfmilter
# The distroless "nonroot" user; numeric so that an empty runtime image works
# too and Kubernetes can verify runAsNonRoot.
USER 65532:65532
# 8895: milter (the MTA connects here); 9466: /metrics, /-/healthy, /-/ready.
EXPOSE 8895 9466
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/spfmilter", "healthcheck"]
ENTRYPOINT ["/spfmilter"]
# Inside a container the listeners must not be bound to loopback only.
CMD ["serve", "--listen", "inet:0.0.0.0:8895", "--http-listen", "0.0.0.0:9466"]
