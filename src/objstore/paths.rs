//! Every object key the broker writes is built here.
//!
//! ```text
//! wal/<broker-id>/<broker-epoch>/<seq, 20 digits>.wal
//! wal/<broker-id>/<broker-epoch>/<topic-id>-<partition>-<base-offset, 20 digits>-<leader-epoch>-<file id>.seg
//!                                    a growing local segment file linked in (local mode)
//! segments/<topic-id>/<partition>/<base-offset, 20 digits>-<leader-epoch>.log
//! segments/<topic-id>/<partition>/<base-offset, 20 digits>-<leader-epoch>.idx
//! cluster.owner                      the id of the cluster owning the prefix
//! ```
//! Keys are unique per writer incarnation (broker epoch, leader epoch), so a
//! create-only put never collides with another live writer.

use uuid::Uuid;

/// Prefix of all WAL objects.
pub const WAL_PREFIX: &str = "wal";
/// Prefix of all segment objects.
pub const SEGMENT_PREFIX: &str = "segments";
/// The ownership marker: written once, create-only, with the cluster id.
pub const OWNER: &str = "cluster.owner";

/// Key of a WAL object.
pub fn wal(broker_id: i32, broker_epoch: i64, seq: u64) -> String {
    format!("{WAL_PREFIX}/{broker_id}/{broker_epoch}/{seq:020}.wal")
}

/// Key of a local segment file linked into a `file://` store (local mode):
/// it grows as the segment is appended to; `file_id` (the inode) tells two
/// files of the same segment apart.
pub fn wal_local(
    broker_id: i32,
    broker_epoch: i64,
    topic_id: Uuid,
    partition: i32,
    segment_base: i64,
    leader_epoch: i32,
    file_id: u64,
) -> String {
    format!(
        "{WAL_PREFIX}/{broker_id}/{broker_epoch}/{}-{partition}-{segment_base:020}-{leader_epoch}-{file_id}.seg",
        topic_id.simple()
    )
}

/// Prefix of one topic's segment objects.
pub fn topic_segments(topic_id: Uuid) -> String {
    format!("{SEGMENT_PREFIX}/{}", topic_id.simple())
}

/// Key of a segment's data object.
pub fn segment(topic_id: Uuid, partition: i32, base_offset: i64, leader_epoch: i32) -> String {
    format!(
        "{}/{partition}/{base_offset:020}-{leader_epoch}.log",
        topic_segments(topic_id)
    )
}

/// Key of a segment's offset index object.
pub fn segment_index(data_key: &str) -> String {
    match data_key.strip_suffix(".log") {
        Some(stem) => format!("{stem}.idx"),
        None => format!("{data_key}.idx"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_sequence_and_offset() {
        assert!(wal(1, 2, 9) < wal(1, 2, 10));
        let t = Uuid::from_u128(7);
        assert!(segment(t, 0, 99, 1) < segment(t, 0, 100, 1));
        assert_eq!(
            segment_index(&segment(t, 3, 5, 2)),
            format!("segments/{}/3/00000000000000000005-2.idx", t.simple())
        );
    }
}
