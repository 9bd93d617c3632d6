//! The soak's short version (issue 17; docs/reliability.md): 200 clients for 30 s through
//! `-b ws-listen:` → a TCP echo, with 10 % of them killed, 5 % stalled, the backend restarted
//! once, and garbage and slowloris connections; the load is bench/src/soak/load.rs, the same
//! code `scripts/bench --soak` runs at full size. Passes when every echo of every session came
//! back intact and in order, every healthy client ended cleanly, and the relay let go of every
//! session (sessions active 0 on /metrics, descriptors back to where they were).

#[path = "../../bench/src/soak/load.rs"]
#[allow(dead_code)]
mod load;

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use crate::harness::{LIMIT, open_fds};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_200_clients_with_faults_loses_nothing_and_leaks_nothing() {
    let backend = load::Backend::start().await.unwrap();
    let upstream = format!("tcp:127.0.0.1:{}", backend.port);
    let (mut b, metrics, listening) =
        crate::metrics::with_metrics(&["-b", "ws-listen:127.0.0.1:0", &upstream]).await;
    let url = format!("ws://{listening}/");
    let pid = b.child.id().unwrap();
    let before = open_fds(pid);

    let plan = load::Plan::short();
    let counts = load::run(&plan, &url, &backend).await;
    let report: Vec<String> = load::summary(&counts)
        .into_iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    eprintln!("soak:\n{}", report.join("\n"));
    let failures = load::failures(&plan, &counts);
    assert!(failures.is_empty(), "{failures:?}\n{report:#?}");
    assert!(counts.killed.load(Relaxed) > 0 && counts.stalled.load(Relaxed) > 0);
    assert!(
        counts.cut.load(Relaxed) > 0,
        "the backend restart cut no session?"
    );

    // The relay lets go of every session: none active, descriptors as before.
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let (_, text) = crate::metrics::get(&metrics, "/metrics").await;
        let active = crate::metrics::value(&text, "wsbridge_sessions_active");
        let now = open_fds(pid);
        if active == 0.0 && now == before {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{active} sessions active, {now} descriptors ({before} before)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(b.stderr_count("panicked"), 0);
}
