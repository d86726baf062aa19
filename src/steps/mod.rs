//! The steps of a run. Each is a plain async function over concrete SDK clients and a typed plan that
//! writes only its own report section (a `Serialize` type implementing `report::Section`) and the run's
//! timeline; decisions live in plans, I/O lives here, the run's status is decided in `run.rs`.
//!
//! APIs: see each step.

pub mod approval;
pub mod canary;
pub mod deploy;
pub mod deploy_time;
pub mod frontend;
pub mod image;
pub mod known_causes;
pub mod masking;
pub mod migrate;
pub mod release;
pub mod signals;
pub mod smoke;
pub mod target_health;
pub mod task_logs;
pub mod test_sample;
pub mod watch;

use aws_types::SdkConfig;

/// The SDK clients of one run, all built from one `SdkConfig`.
#[derive(Debug, Clone)]
pub struct Clients {
    /// The config they were built from (region, credentials, endpoints).
    pub sdk: SdkConfig,
    pub ecs: aws_sdk_ecs::Client,
    pub ecr: aws_sdk_ecr::Client,
    /// Path-style addressing when an endpoint override (an emulator) is in force.
    pub s3: aws_sdk_s3::Client,
    pub sts: aws_sdk_sts::Client,
    pub cloudfront: aws_sdk_cloudfront::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
    pub elb: aws_sdk_elasticloadbalancingv2::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    /// S3 uses path-style addressing (an emulator's endpoint).
    pub path_style: bool,
}

impl Clients {
    /// The same credentials and endpoints in `region` (a clone when it is already theirs).
    pub fn in_region(&self, region: &str) -> Clients {
        if self.sdk.region().map(|r| r.as_ref()) == Some(region) {
            return self.clone();
        }
        let sdk = self
            .sdk
            .to_builder()
            .region(aws_types::region::Region::new(region.to_string()))
            .build();
        Clients::new(sdk, self.path_style)
    }

    /// Build every client from `sdk`. `path_style` makes S3 use path-style addressing (for emulators).
    pub fn new(sdk: SdkConfig, path_style: bool) -> Self {
        let s3_conf = aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(path_style)
            .build();
        Clients {
            ecs: aws_sdk_ecs::Client::new(&sdk),
            ecr: aws_sdk_ecr::Client::new(&sdk),
            s3: aws_sdk_s3::Client::from_conf(s3_conf),
            sts: aws_sdk_sts::Client::new(&sdk),
            cloudfront: aws_sdk_cloudfront::Client::new(&sdk),
            logs: aws_sdk_cloudwatchlogs::Client::new(&sdk),
            elb: aws_sdk_elasticloadbalancingv2::Client::new(&sdk),
            cloudwatch: aws_sdk_cloudwatch::Client::new(&sdk),
            path_style,
            sdk,
        }
    }
}
