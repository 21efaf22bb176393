//! The incoming box loop against the real server's incoming box: order, atomic reservation
//! between devices, PROCESSED only after saving, FAILED with retries, PROCESSING expiry.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use blobs_client::{Consumer, Flag, IncomingBox, IncomingConfig, RetryPolicy};
use common::{manager, server_in};
use futures::future::BoxFuture;

/// Records what it saved; checks the item's flags while it works; fails on demand.
struct Recorder {
    manager: blobs_client::BlobManager,
    saved: Mutex<Vec<(String, Vec<u8>)>>,
    flags_seen: Mutex<Vec<Vec<Flag>>>,
    fail_first: Mutex<u32>,
    always_fail: bool,
}

impl Recorder {
    fn new(manager: blobs_client::BlobManager) -> Arc<Self> {
        Arc::new(Self {
            manager,
            saved: Mutex::default(),
            flags_seen: Mutex::default(),
            fail_first: Mutex::new(0),
            always_fail: false,
        })
    }

    fn saved_ids(&self) -> Vec<String> {
        self.saved.lock().unwrap().iter().map(|(id, _)| id.clone()).collect()
    }
}

impl Consumer for Recorder {
    fn consume<'a>(&'a self, id: &'a str, payload: &'a [u8]) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let flags = self.manager.flags("MX", id).await.map_err(|e| e.to_string())?;
            self.flags_seen.lock().unwrap().push(flags);
            if self.always_fail {
                return Err("cannot parse this message".into());
            }
            {
                let mut left = self.fail_first.lock().unwrap();
                if *left > 0 {
                    *left -= 1;
                    return Err("disk full".into());
                }
            }
            self.saved.lock().unwrap().push((id.to_owned(), payload.to_vec()));
            Ok(())
        })
    }
}

fn config() -> IncomingConfig {
    IncomingConfig {
        retry: RetryPolicy {
            max_attempts: 3,
            base: Duration::from_millis(400),
            cap: Duration::from_millis(400),
        },
        ..IncomingConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn items_are_processed_oldest_first_and_marked_only_after_saving() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_in(dir.path(), |_| {}).await;
    for id in ["m3", "m1", "m2"] {
        assert_eq!(server.deliver(id, format!("mail {id}").as_bytes()).await, 200);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let m = manager(&server, "device.db");
    let rec = Recorder::new(m.clone());
    let mut inbox = IncomingBox::new(m.clone(), config());
    assert!(
        inbox.run_once().await.unwrap().processed.is_empty(),
        "no consumer, nothing done"
    );
    inbox.add_consumer(rec.clone());
    let report = inbox.run_once().await.unwrap();
    assert_eq!(report.processed, ["m3", "m1", "m2"], "delivery order");
    assert_eq!(rec.saved_ids(), ["m3", "m1", "m2"]);
    assert_eq!(rec.saved.lock().unwrap()[0].1, b"mail m3");
    // While the consumer worked, the item was reserved, not yet processed.
    assert!(rec.flags_seen.lock().unwrap().iter().all(|f| f == &[Flag::Processing]));
    // Processed items are gone from the box and from the device.
    assert!(m.remote_list("MX").await.unwrap().is_empty());
    assert!(m.local_list("MX").await.unwrap().is_empty());
    assert!(inbox.run_once().await.unwrap().processed.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn two_devices_never_process_one_item_twice() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_in(dir.path(), |_| {}).await;
    for i in 0..30 {
        assert_eq!(server.deliver(&format!("x{i:02}"), b"hello").await, 200);
    }
    let (a, b) = (manager(&server, "a.db"), manager(&server, "b.db"));
    let (ra, rb) = (Recorder::new(a.clone()), Recorder::new(b.clone()));
    let mut ia = IncomingBox::new(a, config());
    ia.add_consumer(ra.clone());
    let mut ib = IncomingBox::new(b, config());
    ib.add_consumer(rb.clone());
    let (x, y) = tokio::join!(ia.run_once(), ib.run_once());
    let (x, y) = (x.unwrap(), y.unwrap());
    let mut all: Vec<String> = ra.saved_ids().into_iter().chain(rb.saved_ids()).collect();
    all.sort();
    let expected: Vec<String> = (0..30).map(|i| format!("x{i:02}")).collect();
    assert_eq!(all, expected, "each item exactly once");
    assert_eq!(x.processed.len() + y.processed.len(), 30);
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_items_are_retried_after_a_pause_until_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_in(dir.path(), |_| {}).await;
    server.deliver("flaky", b"retry me").await;
    let m = manager(&server, "device.db");
    let rec = Recorder::new(m.clone());
    *rec.fail_first.lock().unwrap() = 1;
    let poison = Arc::new(Recorder {
        always_fail: true,
        ..Arc::into_inner(Recorder::new(m.clone())).unwrap()
    });
    let mut flaky_box = IncomingBox::new(m.clone(), config());
    flaky_box.add_consumer(rec.clone());
    // The first item fails once: FAILED on the server, not PROCESSED.
    let r = flaky_box.run_once().await.unwrap();
    assert_eq!(r.failed.len(), 1, "{r:?}");
    let failed_id = r.failed[0].0.clone();
    assert_eq!(failed_id, "flaky");
    assert_eq!(m.flags("MX", &failed_id).await.unwrap(), [Flag::Failed]);
    // Not again before its pause is over...
    let r = flaky_box.run_once().await.unwrap();
    assert!(r.failed.is_empty() && !r.processed.contains(&failed_id), "{r:?}");
    // ...then again, and this time it works.
    tokio::time::sleep(Duration::from_millis(450)).await;
    let r = flaky_box.run_once().await.unwrap();
    assert!(r.processed.contains(&failed_id), "{r:?}");

    // A message no consumer can handle is given up after the attempt limit.
    server.deliver("poison", b"never works").await;
    let mut poison_box = IncomingBox::new(m.clone(), config());
    poison_box.add_consumer(poison);
    let mut gave_up = Vec::new();
    for _ in 0..6 {
        let r = poison_box.run_once().await.unwrap();
        gave_up.extend(r.gave_up);
        tokio::time::sleep(Duration::from_millis(450)).await;
    }
    let remaining = m.remote_list("MX").await.unwrap();
    assert_eq!(gave_up.len(), 1, "given up once");
    assert_eq!(remaining, gave_up);
    assert_eq!(m.flags("MX", &remaining[0]).await.unwrap(), [Flag::Failed]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_item_reserved_by_a_device_that_died_is_taken_over_after_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_in(dir.path(), |c| c.processing_timeout = Duration::from_secs(1)).await;
    server.deliver("orphan", b"left behind").await;
    let m = manager(&server, "device.db");
    // Another device reserved it and crashed.
    m.set_flags("MX", "orphan", &[Flag::Processing], Some(&[Flag::Pending]))
        .await
        .unwrap();
    let rec = Recorder::new(m.clone());
    let mut inbox = IncomingBox::new(m.clone(), config());
    inbox.add_consumer(rec.clone());
    assert!(inbox.run_once().await.unwrap().processed.is_empty(), "still reserved");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = inbox.run_once().await.unwrap();
    assert_eq!(r.processed, ["orphan"]);
    assert_eq!(rec.saved.lock().unwrap()[0].1, b"left behind");
}
