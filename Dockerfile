# syntax=docker/dockerfile:1
#
# Strata container image: the release binary on a distroless runtime (glibc,
# CA certificates, no shell, no package manager), running as the non-root
# user 65532. Build from the repository root:
#
#   VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
#   docker build --build-arg VERSION="$VERSION" -t strata:"$VERSION" .
#
# The build fails when VERSION differs from what the binary reports
# (`strata --version`), so the image's version label is always the binary's.
# The chart (helm/strata) runs /usr/local/bin/strata from this image.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
ARG VERSION
WORKDIR /src
# Dependencies first, so that editing src/ reuses the cached registry.
COPY Cargo.toml Cargo.lock ./
COPY vendor ./vendor
COPY src ./src
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    test -n "$VERSION" || { echo "pass --build-arg VERSION=<the version in Cargo.toml>" >&2; exit 1; } \
    && cargo build --release --locked --bin strata \
    && install -D -m 0755 target/release/strata /out/strata \
    && strip /out/strata \
    && got="$(/out/strata --version)" \
    && if [ "$got" != "strata $VERSION" ]; then echo "binary reports '$got', VERSION is '$VERSION'" >&2; exit 1; fi

FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION
LABEL org.opencontainers.image.title="strata" \
      org.opencontainers.image.description="Kafka-compatible streaming broker whose durable home is object storage" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/strata /usr/local/bin/strata
USER 65532:65532
WORKDIR /var/lib/strata
EXPOSE 9092 8080 9093
ENTRYPOINT ["/usr/local/bin/strata"]
CMD ["serve"]
