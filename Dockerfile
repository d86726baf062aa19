# Build the static binary, then ship it alone in an empty image. The runner starts the container as root in
# /github/workspace, so there is no USER and no WORKDIR. Root certificates are embedded in the binary.
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
