//! The loopback ALB over the ECS simulator's progressive service: production requests split by the
//! production rule's weights, the test listener reaching only the new revision, and each target group's
//! own numbers in the CloudWatch simulator, read back with the real SDK's `GetMetricData` filtered by
//! dimensions.

use harness as common;

use std::time::{Duration, Instant, SystemTime};

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat};
use common::alb::{load_balancer_dimension, target_group_dimension, Alb};
use common::app::{App, Mode};
use common::cw_sim::CwSim;
use common::ecs_sim::{EcsSim, HookAction, Plan, Scenario};
use common::elb_sim::LOAD_BALANCER;
use common::seed::rt;

/// Sum of `metric` over the last minute for exactly `dims`; `None` with no datapoint.
async fn sum(cw: &aws_sdk_cloudwatch::Client, metric: &str, dims: &[(&str, &str)]) -> Option<f64> {
    let now = SystemTime::now();
    let mut m = Metric::builder()
        .namespace("AWS/ApplicationELB")
        .metric_name(metric);
    for (k, v) in dims {
        m = m.dimensions(Dimension::builder().name(*k).value(*v).build());
    }
    let out = cw
        .get_metric_data()
        .start_time(DateTime::from(now - Duration::from_secs(60)))
        .end_time(DateTime::from(now + Duration::from_secs(1)))
        .metric_data_queries(
            MetricDataQuery::builder()
                .id("q")
                .metric_stat(
                    MetricStat::builder()
                        .metric(m.build())
                        .period(120)
                        .stat("Sum")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let r = &out.metric_data_results()[0];
    (!r.values().is_empty()).then(|| r.values().iter().sum())
}

#[test]
fn cloudwatch_answers_each_target_group_with_its_own_numbers() {
    let cw = CwSim::start();
    let lb = load_balancer_dimension(LOAD_BALANCER);
    rt().block_on(async {
        let client = cw.client().await;
        let put = |tg: &'static str, n: usize| {
            let mut req = client.put_metric_data().namespace("AWS/ApplicationELB");
            for _ in 0..n {
                req = req.metric_data(
                    aws_sdk_cloudwatch::types::MetricDatum::builder()
                        .metric_name("RequestCount")
                        .timestamp(DateTime::from(SystemTime::now()))
                        .value(1.0)
                        .dimensions(Dimension::builder().name("LoadBalancer").value(lb).build())
                        .dimensions(Dimension::builder().name("TargetGroup").value(tg).build())
                        .build(),
                );
            }
            req.send()
        };
        put("targetgroup/stage-blue/0123456789abcdef", 7)
            .await
            .unwrap();
        put("targetgroup/stage-green/fedcba9876543210", 3)
            .await
            .unwrap();
        let blue = [
            ("LoadBalancer", lb),
            ("TargetGroup", "targetgroup/stage-blue/0123456789abcdef"),
        ];
        let green = [
            ("TargetGroup", "targetgroup/stage-green/fedcba9876543210"),
            ("LoadBalancer", lb),
        ];
        assert_eq!(sum(&client, "RequestCount", &blue).await, Some(7.0));
        // Dimension order does not matter; the set does.
        assert_eq!(sum(&client, "RequestCount", &green).await, Some(3.0));
        // A query with a subset of the dimensions is another metric: no data.
        assert_eq!(
            sum(&client, "RequestCount", &[("LoadBalancer", lb)]).await,
            None
        );
        let other = [
            ("LoadBalancer", lb),
            ("TargetGroup", "targetgroup/stage-red/1"),
        ];
        assert_eq!(sum(&client, "RequestCount", &other).await, None);
        assert_eq!(sum(&client, "HTTPCode_Target_5XX_Count", &blue).await, None);
    });
}

#[test]
fn the_alb_splits_production_traffic_by_the_canary_weights_and_feeds_cloudwatch_per_group() {
    let plan = Plan {
        minute: Duration::from_millis(200),
        stage: Duration::from_millis(20),
        ..Plan::canary(10.0, 1)
    }
    .pause(&["PRE_PRODUCTION_TRAFFIC_SHIFT"], 100, HookAction::Rollback);
    let sim = EcsSim::start(Scenario::Progressive(plan.clone()));
    let progress = sim.progress().unwrap();
    let (old, new) = (App::start(), App::start());
    new.set_mode(Mode::ErrorShare(20));
    let cw = CwSim::start();
    let (blue, green) = (plan.production_group.clone(), plan.alternate_group.clone());
    let alb = Alb::progressive(
        progress.clone(),
        vec![
            (blue.clone(), old.base_url()),
            (green.clone(), new.base_url()),
        ],
        Some(cw.sink()),
    );
    rt().block_on(async {
        let http = reqwest::Client::new();
        let get = |base: String| {
            let http = http.clone();
            async move {
                http.get(format!("{base}/products"))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }
        };
        // At rest: everything on blue, on both listeners.
        for _ in 0..20 {
            assert_eq!(get(alb.production_url.clone()).await, 200);
            assert_eq!(get(alb.test_url.clone()).await, 200);
        }
        assert_eq!(alb.served(false, &blue).requests, 20);
        assert_eq!(alb.served(true, &blue).requests, 20);

        let ecs = aws_sdk_ecs::Client::from_conf(
            aws_sdk_ecs::Config::builder()
                .behavior_version(aws_sdk_ecs::config::BehaviorVersion::latest())
                .region(aws_sdk_ecs::config::Region::new("us-east-1"))
                .endpoint_url(&sim.endpoint)
                .credentials_provider(aws_sdk_ecs::config::Credentials::new(
                    "testing", "testing", None, None, "test",
                ))
                .http_client(cloudshop_deploy::aws::http_client())
                .build(),
        );
        ecs.update_service()
            .cluster("stage-cluster")
            .service("stage-backend")
            .task_definition("cloudshop-backend:1")
            .send()
            .await
            .unwrap();
        // Wait for the second PRE_PRODUCTION_TRAFFIC_SHIFT pause: the canary holds 10%.
        let start = Instant::now();
        loop {
            let first = progress.hook();
            if let Some((id, status)) = first {
                if status == "AWAITING_ACTION" {
                    if progress.weights().production_of(&green) == 10.0 {
                        break;
                    }
                    ecs.continue_service_deployment()
                        .service_deployment_arn(progress.deployment_arn().unwrap())
                        .hook_id(id)
                        .action(aws_sdk_ecs::types::DeploymentLifecycleHookAction::Continue)
                        .send()
                        .await
                        .unwrap();
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{:?}",
                progress.status()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let before = (alb.served(false, &blue), alb.served(false, &green));
        for _ in 0..400 {
            get(alb.production_url.clone()).await;
        }
        for _ in 0..50 {
            get(alb.test_url.clone()).await;
        }
        let blue_prod = alb.served(false, &blue).requests - before.0.requests;
        let green_prod = alb.served(false, &green).requests - before.1.requests;
        assert_eq!(blue_prod + green_prod, 400);
        // 10% of 400 = 40; a binomial 99.99% band is roughly 16..68.
        assert!(
            (16..=68).contains(&green_prod),
            "green took {green_prod} of 400"
        );
        // The test listener reaches only the new revision.
        assert_eq!(alb.served(true, &green).requests, 50);
        assert_eq!(alb.served(true, &blue).requests, 20);
        // The bad version's 20% (exact per hundred of its own requests).
        let g = alb.served(false, &green).requests + alb.served(true, &green).requests;
        let g5 = alb.served(false, &green).errors + alb.served(true, &green).errors;
        assert_eq!(g5, g / 5, "{g5} of {g}");
        assert_eq!(alb.served(false, &blue).errors, 0);

        let client = cw.client().await;
        let lb = load_balancer_dimension(LOAD_BALANCER);
        let (bt, gt) = (
            target_group_dimension(&blue).unwrap(),
            target_group_dimension(&green).unwrap(),
        );
        let (bd, gd) = (
            [("LoadBalancer", lb), ("TargetGroup", bt)],
            [("LoadBalancer", lb), ("TargetGroup", gt)],
        );
        let blue_total = alb.served(false, &blue).requests + alb.served(true, &blue).requests;
        assert_eq!(
            sum(&client, "RequestCount", &bd).await,
            Some(blue_total as f64)
        );
        assert_eq!(sum(&client, "RequestCount", &gd).await, Some(g as f64));
        assert_eq!(
            sum(&client, "HTTPCode_Target_5XX_Count", &gd).await,
            Some(g5 as f64)
        );
        assert_eq!(sum(&client, "HTTPCode_Target_5XX_Count", &bd).await, None);
    });
}
