//! Filesystem storage: the backend over a local data directory, its durable steps, layout
//! and in-memory index, group commit, and the backups and restores of that directory.

pub mod backend;
pub mod backup;
pub mod disk;
pub mod group_sync;
pub mod index;
pub mod layout;
pub mod restore;
