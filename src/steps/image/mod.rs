//! The container image in ECR, for every command: find it (a tag, or the git SHA with its 7-character
//! short form as a fallback, to a digest), tag it (the manifest put back byte for byte), and bring it into
//! the target repository of a promotion or from an archive in the workspace, keeping its digest.
//!
//! Layout: `resolve` (repositories, tags to digests, the newest tags for an error), `tag` (ECR
//! `BatchGetImage` + `PutImage`), `copy` (promotion and archive push: read-only resolution, then the
//! copy), `report` (the promotion's outputs and summary section), `error` (the errors all of them
//! share).
//!
//! APIs: ECR `DescribeRepositories`, `DescribeImages`, `BatchGetImage`, `PutImage`,
//! `GetAuthorizationToken`; the registry API through [`crate::registry`].

mod copy;
mod error;
mod report;
mod resolve;
mod tag;

pub use copy::{
    add_extra_tags, copy, open_repository, repository_registry, resolve_source, Copied, Side,
    SourceImage,
};
pub use error::{Error, Role};
pub use report::{Mode, PromoteReport};
pub use resolve::{
    check_tags_free, has_digest, repository, resolve, Mutability, Repository, Resolved,
};
pub use tag::add_tags;

/// An ECR client that answers from `rules` and sends nothing over the network.
#[cfg(test)]
pub(crate) fn mock_ecr(rules: &[&aws_smithy_mocks::Rule]) -> aws_sdk_ecr::Client {
    let mut interceptor = aws_smithy_mocks::MockResponseInterceptor::new()
        .rule_mode(aws_smithy_mocks::RuleMode::MatchAny);
    for rule in rules {
        interceptor = interceptor.with_rule(rule);
    }
    let conf = aws_sdk_ecr::Config::builder()
        .behavior_version_latest()
        .region(aws_types::region::Region::new("us-east-1"))
        .credentials_provider(aws_credential_types::Credentials::for_tests())
        .http_client(aws_smithy_mocks::create_mock_http_client())
        .interceptor(interceptor)
        .build();
    aws_sdk_ecr::Client::from_conf(conf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_tag_message_lists_newest() {
        let e = Error::ImageNotFound {
            repo: "r".into(),
            tag: "abc".into(),
            newest: vec!["n1".into(), "n2".into()],
            role: Role::Source,
        };
        assert!(e.to_string().contains("newest tags: n1, n2"), "{e}");
        let e = Error::ImageNotFound {
            repo: "r".into(),
            tag: "abc".into(),
            newest: Vec::new(),
            role: Role::Deploy,
        };
        assert_eq!(
            e.to_string(),
            "failed to find image `r:abc` in ECR: ImageNotFoundException (the repository has no tagged images)"
        );
    }
}
