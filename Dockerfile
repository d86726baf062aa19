# Two ways to the same image, both a static binary alone in an empty image. The runner starts the container
# as root in /github/workspace, so there is no USER and no WORKDIR; root certificates are embedded.
#
# `--target release` is what the release workflow builds, once, for linux/amd64 and linux/arm64: it only
# copies the binary prebuilt for the target architecture (dist/linux/<arch>/cloudshop-deploy, cross-built
# with cargo-zigbuild), so the multi-arch build needs no emulation and the image holds exactly the binary
# the release checked in an empty root.
FROM scratch AS release
ARG TARGETARCH
COPY dist/linux/${TARGETARCH}/cloudshop-deploy /cloudshop-deploy
ENTRYPOINT ["/cloudshop-deploy"]

# The default (last) stage builds from source: what `runs.image: Dockerfile` builds on a runner for a
# commit that is not a release.
FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends musl-tools && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
RUN cargo build --release --locked --target x86_64-unknown-linux-musl --bin cloudshop-deploy \
 && cp target/x86_64-unknown-linux-musl/release/cloudshop-deploy /cloudshop-deploy

FROM scratch
COPY --from=build /cloudshop-deploy /cloudshop-deploy
ENTRYPOINT ["/cloudshop-deploy"]
