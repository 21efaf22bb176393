//! Progress bars drawn from the manager's events: one per transfer in flight (bytes), and
//! one for a sync (blobs). Verification failures and other notices are printed above them.

use std::collections::HashMap;

use blobs_client::{BlobManager, Direction, Event};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::broadcast::error::RecvError;

pub struct Progress {
    task: Option<(tokio::task::JoinHandle<()>, tokio::sync::oneshot::Sender<()>)>,
}

impl Progress {
    pub fn start(manager: &BlobManager, show: bool) -> Self {
        let mut events = manager.subscribe();
        let (stop_tx, mut stop) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let multi = MultiProgress::with_draw_target(if show {
                ProgressDrawTarget::stderr()
            } else {
                ProgressDrawTarget::hidden()
            });
            let bytes_style = ProgressStyle::with_template(
                "{prefix:>10} {wide_msg} {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12} {eta:>4}",
            )
            .expect("a valid template");
            let sync_style =
                ProgressStyle::with_template("{prefix:>10} {wide_bar} {pos}/{len} blobs").expect("a valid template");
            let mut bars: HashMap<(String, String, bool), ProgressBar> = HashMap::new();
            let mut sync_bar: Option<ProgressBar> = None;
            loop {
                let event = tokio::select! {
                    _ = &mut stop => break,
                    e = events.recv() => e,
                };
                let event = match event {
                    Ok(e) => e,
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => break,
                };
                let key = |ns: &str, id: &str, d: Direction| (ns.to_owned(), id.to_owned(), d == Direction::Upload);
                let label = |d: Direction| if d == Direction::Upload { "upload" } else { "download" };
                match event {
                    Event::TransferStarted {
                        namespace,
                        id,
                        direction,
                        total,
                        ..
                    } => {
                        let bar = bars.entry(key(&namespace, &id, direction)).or_insert_with(|| {
                            let b = multi.add(ProgressBar::new(0));
                            b.set_style(bytes_style.clone());
                            b.set_prefix(label(direction));
                            b.set_message(id.clone());
                            b
                        });
                        if let Some(t) = total {
                            bar.set_length(t);
                        }
                    }
                    Event::Progress {
                        namespace,
                        id,
                        direction,
                        done,
                        total,
                    } => {
                        if let Some(b) = bars.get(&key(&namespace, &id, direction)) {
                            b.set_length(total);
                            b.set_position(done);
                        }
                    }
                    Event::TransferDone {
                        namespace,
                        id,
                        direction,
                        ..
                    } => {
                        if let Some(b) = bars.remove(&key(&namespace, &id, direction)) {
                            b.finish_and_clear();
                            multi.remove(&b);
                        }
                    }
                    Event::TransferFailed {
                        namespace,
                        id,
                        direction,
                        attempt,
                        error,
                        retry_in,
                    } => {
                        let what = match retry_in {
                            Some(d) => format!("retrying in {:.1} s", d.as_secs_f64()),
                            None => "giving up".to_owned(),
                        };
                        let _ = multi.println(format!(
                            "{} of {namespace}/{id} failed (attempt {attempt}): {error}; {what}",
                            label(direction)
                        ));
                        if retry_in.is_none()
                            && let Some(b) = bars.remove(&key(&namespace, &id, direction))
                        {
                            b.abandon();
                            multi.remove(&b);
                        }
                    }
                    Event::VerificationFailed {
                        namespace,
                        id,
                        failures,
                        error,
                    } => {
                        let _ = multi.println(format!(
                            "{namespace}/{id} failed verification ({failures} times): {error}"
                        ));
                    }
                    Event::Unusable { namespace, id } => {
                        let _ = multi.println(format!("{namespace}/{id} is unusable: its server copy does not verify"));
                    }
                    Event::QuotaExceeded { namespace, id } => {
                        let _ = multi.println(format!("{namespace}/{id}: the server's quota is full"));
                    }
                    Event::Conflict { namespace, id } => {
                        let _ = multi.println(format!(
                            "{namespace}/{id}: the server holds another version of this blob"
                        ));
                    }
                    Event::RemovedRemotely { .. } => {}
                    Event::SyncProgress {
                        blobs_done,
                        blobs_total,
                        ..
                    } => {
                        let bar = sync_bar.get_or_insert_with(|| {
                            let b = multi.add(ProgressBar::new(blobs_total as u64));
                            b.set_style(sync_style.clone());
                            b.set_prefix("sync");
                            b
                        });
                        bar.set_length(blobs_total as u64);
                        bar.set_position(blobs_done as u64);
                    }
                }
            }
            for b in bars.values() {
                b.finish_and_clear();
            }
            if let Some(b) = sync_bar {
                b.finish_and_clear();
            }
        });
        Self {
            task: Some((task, stop_tx)),
        }
    }

    pub async fn finish(mut self) {
        if let Some((task, stop)) = self.task.take() {
            let _ = stop.send(());
            let _ = task.await;
        }
    }
}
