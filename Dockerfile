# One image with both binaries: mailqueue-runner (the entrypoint, what runner pods run) and
# mailqueue-operator (the chart's Deployment runs it as its command).
#
#   docker build -t REGISTRY/mailqueue-operator:0.1.0 .
#
# Stage 1: build both release binaries from the locked workspace.
FROM docker.io/library/rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p mailqueue-runner -p mailqueue-operator \
        --bin mailqueue-runner --bin mailqueue-operator \
 && install -D -m 0755 target/release/mailqueue-runner /out/mailqueue-runner \
 && install -D -m 0755 target/release/mailqueue-operator /out/mailqueue-operator

# Stage 2: glibc, CA certificates (the runner's Mailman 3 REST client and the Kubernetes client
# use the system roots) and nothing else; no shell, no package manager. Bookworm as in the builder,
# so the glibc the binaries were linked against is the one they run with.
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
COPY --from=builder /out/mailqueue-runner /out/mailqueue-operator /usr/local/bin/
# The distroless "nonroot" user; runner pods override it with the Mailman tree's owner.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/mailqueue-runner"]
