//! Both local stores, through the one trait, on real files: atomic puts, crash leftovers,
//! resumable download stages, keys, namespaces and hostile names.

mod common;

use std::path::Path;
use std::sync::Arc;

use blobs_client::{BlobState, LocalStore, Priority, StoreError, SyncStatus, read_all};
use common::{StoreKind, noise, open_store, walk};

const KINDS: [StoreKind; 2] = [StoreKind::Sqlcipher, StoreKind::Fs];

fn path(dir: &Path, kind: StoreKind) -> std::path::PathBuf {
    dir.join(match kind {
        StoreKind::Sqlcipher => "store.db",
        StoreKind::Fs => "store",
    })
}

fn put(store: &dyn LocalStore, ns: &str, id: &str, data: &[u8], status: SyncStatus) {
    let mut w = store.new_content(ns, id).unwrap();
    for piece in data.chunks(100_000) {
        w.write(piece).unwrap();
    }
    w.commit(&BlobState::new(ns, id, status, Priority::Medium)).unwrap();
}

#[test]
fn content_streams_in_and_out_and_commits_atomically() {
    for kind in KINDS {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(kind, &path(dir.path(), kind));
        let big = noise(1, 3_000_001);
        put(store.as_ref(), "default", "big", &big, SyncStatus::PendingUpload);
        let info = store.content("default", "big").unwrap().unwrap();
        assert_eq!(info.size, big.len() as u64);
        let expected: [u8; 32] = sha256(&big);
        assert_eq!(info.sha256, Some(expected), "{kind:?}");
        let mut reader = store.open_content("default", "big").unwrap().unwrap();
        let mut back = Vec::new();
        let mut pieces = 0;
        while let Some(c) = reader.next_chunk().unwrap() {
            assert!(c.len() <= 1 << 20, "pieces are bounded");
            back.extend(c);
            pieces += 1;
        }
        assert!(pieces > 1);
        assert_eq!(back, big, "{kind:?}");

        // A writer that is never committed leaves nothing visible.
        let mut w = store.new_content("default", "half").unwrap();
        w.write(&[1u8; 500_000]).unwrap();
        assert!(store.content("default", "half").unwrap().is_none());
        assert!(store.state("default", "half").unwrap().is_none());
        w.discard().unwrap();

        // Replacing content keeps the old one readable until the commit.
        let mut w = store.new_content("default", "big").unwrap();
        w.write(b"small now").unwrap();
        assert_eq!(store.content("default", "big").unwrap().unwrap().size, big.len() as u64);
        w.commit(&BlobState::new(
            "default",
            "big",
            SyncStatus::PendingUpload,
            Priority::High,
        ))
        .unwrap();
        assert_eq!(
            read_all(store.as_ref(), "default", "big").unwrap().unwrap(),
            b"small now"
        );
        assert_eq!(store.state("default", "big").unwrap().unwrap().priority, Priority::High);
    }
}

fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(data).into()
}

#[test]
fn a_crash_during_a_put_leaves_no_trace_after_reopening() {
    for kind in KINDS {
        let dir = tempfile::tempdir().unwrap();
        let p = path(dir.path(), kind);
        {
            let store = open_store(kind, &p);
            put(store.as_ref(), "default", "kept", b"committed", SyncStatus::Synced);
            let mut w = store.new_content("default", "torn").unwrap();
            w.write(&noise(2, 700_000)).unwrap();
            // The process dies here: no commit, no discard, no destructor.
            std::mem::forget(w);
            std::mem::forget(store);
        }
        let store = open_store(kind, &p);
        assert!(store.content("default", "torn").unwrap().is_none(), "{kind:?}");
        assert!(store.state("default", "torn").unwrap().is_none());
        assert_eq!(
            read_all(store.as_ref(), "default", "kept").unwrap().unwrap(),
            b"committed"
        );
        if kind == StoreKind::Fs {
            // The stage's file was collected.
            let files = walk(&p.join("data")).len();
            assert_eq!(files, 1, "only the committed blob's file is left");
        }
    }
}

#[test]
fn download_stages_resume_at_their_last_checkpoint_after_a_restart() {
    for kind in KINDS {
        let dir = tempfile::tempdir().unwrap();
        let p = path(dir.path(), kind);
        let data = noise(3, 1_000_000);
        {
            let store = open_store(kind, &p);
            store
                .put_state(&BlobState::new("ns", "dl", SyncStatus::PendingDownload, Priority::Low))
                .unwrap();
            let mut w = store.new_download("ns", "dl").unwrap();
            w.write(&data[..300_000]).unwrap();
            w.checkpoint(b"meta-1").unwrap();
            w.write(&data[300_000..600_000]).unwrap();
            w.checkpoint(b"meta-2").unwrap();
            // Written after the last checkpoint: lost with the crash.
            w.write(&data[600_000..700_000]).unwrap();
            std::mem::forget(w);
            std::mem::forget(store);
        }
        let store = open_store(kind, &p);
        let resumed = store
            .resume_download("ns", "dl")
            .unwrap()
            .expect("a checkpointed stage");
        assert_eq!(resumed.meta, b"meta-2", "{kind:?}");
        assert_eq!(resumed.writer.len(), 600_000);
        let mut staged = store.open_download("ns", "dl").unwrap().unwrap();
        let mut prefix = Vec::new();
        while let Some(c) = staged.next_chunk().unwrap() {
            prefix.extend(c);
        }
        assert_eq!(prefix, &data[..600_000], "{kind:?}");
        let mut w = resumed.writer;
        w.write(&data[600_000..]).unwrap();
        let mut done = BlobState::new("ns", "dl", SyncStatus::Synced, Priority::Low);
        done.remote_etag = Some("\"v1\"".into());
        let info = w.commit(&done).unwrap();
        assert_eq!(info.size, data.len() as u64);
        assert_eq!(read_all(store.as_ref(), "ns", "dl").unwrap().unwrap(), data, "{kind:?}");
        assert!(
            store.resume_download("ns", "dl").unwrap().is_none(),
            "the stage went with the commit"
        );
        assert_eq!(store.state("ns", "dl").unwrap().unwrap(), done);

        // A stage never checkpointed is not resumable.
        let mut w = store.new_download("ns", "other").unwrap();
        w.write(b"xyz").unwrap();
        drop(w);
        assert!(store.resume_download("ns", "other").unwrap().is_none());
    }
}

#[test]
fn namespaces_are_separate_and_any_text_is_data() {
    for kind in KINDS {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(kind, &path(dir.path(), kind));
        let hostile = "x'); DROP TABLE sync_state; --";
        put(store.as_ref(), "a", "same", b"in a", SyncStatus::Synced);
        put(store.as_ref(), "b", "same", b"in b", SyncStatus::PendingUpload);
        put(store.as_ref(), hostile, hostile, b"hostile", SyncStatus::LocalOnly);
        assert_eq!(read_all(store.as_ref(), "a", "same").unwrap().unwrap(), b"in a");
        assert_eq!(read_all(store.as_ref(), "b", "same").unwrap().unwrap(), b"in b");
        assert_eq!(read_all(store.as_ref(), hostile, hostile).unwrap().unwrap(), b"hostile");
        assert_eq!(store.states(Some("a"), None).unwrap().len(), 1);
        assert_eq!(store.states(None, None).unwrap().len(), 3, "{kind:?}");
        store.remove_content("a", "same", None).unwrap();
        assert!(store.content("a", "same").unwrap().is_none());
        assert_eq!(read_all(store.as_ref(), "b", "same").unwrap().unwrap(), b"in b");
        assert_eq!(store.namespaces().unwrap(), vec!["b".to_owned(), hostile.to_owned()]);
    }
}

#[test]
fn states_come_by_priority_then_waiting_time_and_filter_by_status() {
    for kind in KINDS {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(kind, &path(dir.path(), kind));
        let mk = |id: &str, p: Priority, at: u64, status: SyncStatus| BlobState {
            queued_at_ms: at,
            ..BlobState::new("ns", id, status, p)
        };
        store
            .put_state(&mk("low", Priority::Low, 1, SyncStatus::PendingUpload))
            .unwrap();
        store
            .put_state(&mk("urgent", Priority::Urgent, 5, SyncStatus::PendingUpload))
            .unwrap();
        store
            .put_state(&mk("high-new", Priority::High, 9, SyncStatus::PendingUpload))
            .unwrap();
        store
            .put_state(&mk("high-old", Priority::High, 2, SyncStatus::PendingUpload))
            .unwrap();
        store
            .put_state(&mk("done", Priority::Urgent, 1, SyncStatus::Synced))
            .unwrap();
        let ids: Vec<String> = store
            .states(Some("ns"), Some(SyncStatus::PendingUpload))
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(ids, ["urgent", "high-old", "high-new", "low"], "{kind:?}");
        assert!(
            !store
                .insert_state(&mk("low", Priority::High, 0, SyncStatus::Synced))
                .unwrap()
        );
        assert_eq!(store.state("ns", "low").unwrap().unwrap().priority, Priority::Low);
    }
}

#[test]
fn stores_open_only_with_their_key_and_hold_no_plaintext() {
    for kind in KINDS {
        let dir = tempfile::tempdir().unwrap();
        let p = path(dir.path(), kind);
        {
            let store = open_store(kind, &p);
            put(
                store.as_ref(),
                "default",
                "secret",
                &common::payload(5, 200_000),
                SyncStatus::Synced,
            );
        }
        let marker = b"PLAINTEXT-MARKER-0005";
        let files: Vec<_> = if p.is_dir() { walk(&p) } else { walk(dir.path()) };
        for f in files {
            let bytes = std::fs::read(&f).unwrap();
            assert!(!bytes.windows(marker.len()).any(|w| w == marker), "plaintext in {f:?}");
        }
        let wrong: Result<Arc<dyn LocalStore>, StoreError> = match kind {
            StoreKind::Sqlcipher => blobs_client::SqlcipherStore::open(&p, &[1; 32]).map(|s| Arc::new(s) as _),
            StoreKind::Fs => blobs_client::FsStore::open(&p, &[1; 32]).map(|s| Arc::new(s) as _),
        };
        let err = wrong.err().expect("a wrong key must not open the store").to_string();
        assert!(err.contains("wrong key"), "{kind:?}: {err}");
    }
}

#[test]
fn a_torn_journal_tail_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("store");
    {
        let store = open_store(StoreKind::Fs, &p);
        put(store.as_ref(), "ns", "one", b"1", SyncStatus::Synced);
        put(store.as_ref(), "ns", "two", b"2", SyncStatus::Synced);
    }
    // A crash in the middle of appending a record.
    let journal = p.join("journal");
    let mut bytes = std::fs::read(&journal).unwrap();
    bytes.extend_from_slice(&[0x40, 0, 0, 0, 1, 2, 3]);
    std::fs::write(&journal, &bytes).unwrap();
    let store = open_store(StoreKind::Fs, &p);
    assert_eq!(read_all(store.as_ref(), "ns", "two").unwrap().unwrap(), b"2");
    put(store.as_ref(), "ns", "three", b"3", SyncStatus::Synced);
    drop(store);
    let store = open_store(StoreKind::Fs, &p);
    assert_eq!(store.states(Some("ns"), None).unwrap().len(), 3);
}

/// Every field of a state, each set apart from its default and from the others, comes back
/// as stored, one at a time and in a listing.
#[test]
fn every_field_of_a_state_comes_back_as_stored() {
    for kind in KINDS {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(kind, &path(dir.path(), kind));
        let mut state = BlobState::new("ns", "all", SyncStatus::FailedDownload, Priority::Urgent);
        state.attempts = 3;
        state.verify_failures = 7;
        state.failure = Some(blobs_client::FailureKind::Conflict);
        state.last_error = Some("409 from the server".into());
        state.queued_at_ms = 1_765_000_000_123;
        state.remote_etag = Some("\"e9\"".into());
        state.replace = true;
        store.put_state(&state).unwrap();
        assert_eq!(store.state("ns", "all").unwrap().unwrap(), state, "{kind:?}");
        assert_eq!(
            store.states(Some("ns"), Some(SyncStatus::FailedDownload)).unwrap(),
            [state.clone()],
            "{kind:?}"
        );
    }
}
