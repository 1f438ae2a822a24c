//! The connection ramp against a mirror that caps connections per client
//! (issue #15, decision 0050): the fake hub answers 429 on a client's
//! connections to its CDN beyond six open at once. With the ramp a file
//! starts with four connections and the step to eight is refused once; with
//! `--fixed-connections` all sixteen are opened at once and the refusals
//! come as a storm (each pausing the pool and halving its connections).

use hfd_testkit::{FakeHub, MIB, Origin, RepoFixture};

use crate::support::{download_checked, run};

const REPO: &str = "org/ramp";

/// Answers from the CDN refused for being over the connection cap.
fn over_cap_answers(hub: &FakeHub) -> usize {
    hub.log()
        .count(|e| e.origin == Origin::Cdn && e.fault == Some("over-connection-cap"))
}

async fn download(extra: &[&str]) -> (usize, usize) {
    let hub = FakeHub::builder()
        .repo(RepoFixture::model(REPO).lfs_file("model.safetensors", 24 * MIB, 150))
        .rate_per_connection(4 * MIB)
        .max_connections_per_client(6)
        .start()
        .await
        .expect("start fake hub");
    let mut args = vec!["-x", "16", "--json"];
    args.extend_from_slice(extra);
    let done = download_checked(&hub, REPO, &args).await;
    let retries = done.json_events().filter(|e| e["event"] == "retry").count();
    (over_cap_answers(&hub), retries)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mirror_capping_connections_per_client_gets_no_429_storm() {
    let (refused, retries) = download(&[]).await;
    assert!(
        refused <= 4,
        "{refused} answers over the cap: more than one refused step"
    );
    assert_eq!(retries, 0, "a refused ramp connection is not retried");

    // The same download with every connection at once: what the ramp spares.
    let (fixed_refused, fixed_retries) = download(&["--fixed-connections"]).await;
    assert!(
        fixed_refused >= 8 && fixed_retries >= 8,
        "fixed -x 16 against a cap of 6: {fixed_refused} refused, {fixed_retries} retries"
    );
}

/// `hfd-rs bench` runs the same ramp and says where it settled: on the
/// capped mirror, within the cap (the fixed counts beyond it see errors).
#[tokio::test(flavor = "multi_thread")]
async fn bench_reports_the_count_the_ramp_settled_on() {
    let hub = FakeHub::builder()
        .repo(RepoFixture::model(REPO).lfs_file("model.safetensors", 8 * MIB, 151))
        .rate_per_connection(2 * MIB)
        .max_connections_per_client(6)
        .start()
        .await
        .expect("start fake hub");
    let done = run(&[
        "bench",
        REPO,
        "--endpoint",
        hub.endpoint(),
        "-x",
        "16",
        "--duration",
        "2",
        "--json",
    ])
    .await;
    done.expect_code(0);
    let doc: serde_json::Value = serde_json::from_str(done.stdout.trim()).expect("json");
    let rows = doc["results"].as_array().expect("rows");
    let ramp = rows
        .iter()
        .find(|r| !r["ramp_settled"].is_null())
        .expect("a ramp row");
    let settled = ramp["ramp_settled"].as_u64().expect("a count");
    assert!(
        (4..=6).contains(&settled),
        "settled on {settled} under a cap of 6: {doc}"
    );
    let fixed = rows
        .iter()
        .find(|r| r["ramp_settled"].is_null())
        .expect("the fixed row");
    assert!(
        fixed["errors"].as_u64() > Some(0),
        "16 at once against a cap of 6: {doc}"
    );
}
