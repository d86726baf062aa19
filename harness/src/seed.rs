//! Seeding moto for end-to-end runs: ECR repositories with small images, S3 buckets.

use super::Moto;

/// A small Docker v2 image manifest, distinct per `n` (moto does not check layers).
pub fn manifest(n: u32) -> String {
    format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":{n},"digest":"sha256:{:064x}"}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":{n},"digest":"sha256:{:064x}"}}]}}"#,
        n,
        n + 1
    )
}

/// A current-thread runtime for seeding from synchronous tests.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Create `repo` (immutable tags if asked) and push one image per tag; returns the digest of the last.
pub fn seed_ecr(moto: &Moto, repo: &str, tags: &[&str], immutable: bool) -> String {
    rt().block_on(async {
        let ecr = aws_sdk_ecr::Client::new(&moto.sdk_config().await);
        let mut req = ecr.create_repository().repository_name(repo);
        if immutable {
            req = req.image_tag_mutability(aws_sdk_ecr::types::ImageTagMutability::Immutable);
        }
        req.send().await.expect("create repository");
        let mut digest = String::new();
        for (i, t) in tags.iter().enumerate() {
            let out = ecr
                .put_image()
                .repository_name(repo)
                .image_manifest(manifest(i as u32 + 1))
                .image_tag(*t)
                .send()
                .await
                .expect("put image");
            digest = out
                .image()
                .and_then(|i| i.image_id())
                .and_then(|i| i.image_digest())
                .expect("digest")
                .to_string();
        }
        digest
    })
}

/// The digest `tag` points at in `repo`, if any.
pub fn digest_of_tag(moto: &Moto, repo: &str, tag: &str) -> Option<String> {
    rt().block_on(async {
        let ecr = aws_sdk_ecr::Client::new(&moto.sdk_config().await);
        ecr.describe_images()
            .repository_name(repo)
            .image_ids(
                aws_sdk_ecr::types::ImageIdentifier::builder()
                    .image_tag(tag)
                    .build(),
            )
            .send()
            .await
            .ok()?
            .image_details()
            .first()?
            .image_digest()
            .map(str::to_string)
    })
}

/// Create an S3 bucket.
pub fn create_bucket(moto: &Moto, bucket: &str) {
    rt().block_on(async {
        moto.s3()
            .await
            .create_bucket()
            .bucket(bucket)
            .send()
            .await
            .expect("create bucket");
    })
}
