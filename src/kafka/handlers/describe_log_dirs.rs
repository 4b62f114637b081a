//! DescribeLogDirs: this broker's log directory, with the partitions it
//! leads. Two entries, so that neither number is passed off as the other:
//!
//! - the data dir (`log.dirs`): `partition_size` = bytes of the partition's
//!   segments on this broker's disk (hot segments and not yet trimmed
//!   sealed ones);
//! - `object-storage`: `partition_size` = bytes of the partition's
//!   committed extents (WAL ranges and segments) in the bucket, which is
//!   the durable copy. Only partitions this broker leads are listed, so a
//!   tool that sums over brokers counts each partition once.
//!
//! `offset_lag` is always 0 (no followers), `is_future_key` false.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};

use super::sb;
use crate::kafka::Ctx;

/// The name of the object-storage entry.
pub const OBJECT_STORAGE_DIR: &str = "object-storage";

pub fn handle(ctx: &Ctx, req: DescribeLogDirsRequest) -> DescribeLogDirsResponse {
    let b = &ctx.broker;
    let meta = b.meta();
    // Wanted partitions by topic; None = all.
    let wanted: Option<BTreeMap<String, Vec<i32>>> = req.topics.as_ref().map(|ts| {
        ts.iter()
            .map(|t| (t.topic.0.to_string(), t.partitions.clone()))
            .collect()
    });
    let mut local: Vec<DescribeLogDirsTopic> = Vec::new();
    let mut remote: Vec<DescribeLogDirsTopic> = Vec::new();
    let mut handles = b.topic_handles();
    handles.sort_by(|a, b| a.name.cmp(&b.name));
    for h in handles {
        let want = match &wanted {
            Some(w) => match w.get(&h.name) {
                Some(ps) => Some(ps),
                None => continue,
            },
            None => None,
        };
        let Some(t) = meta.topic_by_id(&h.id) else {
            continue;
        };
        let (mut lp, mut rp) = (Vec::new(), Vec::new());
        for p in &h.partitions {
            if want.is_some_and(|ps| !ps.contains(&p.index)) || !b.leads(h.id, p) {
                continue;
            }
            let local_bytes = i64::try_from(p.log.size_bytes()).unwrap_or(i64::MAX);
            let remote_bytes = t
                .partitions
                .get(p.index as usize)
                .map(|pm| pm.extents.iter().map(|e| e.byte_len).sum::<u64>())
                .map_or(0, |n| i64::try_from(n).unwrap_or(i64::MAX));
            for (list, size) in [(&mut lp, local_bytes), (&mut rp, remote_bytes)] {
                list.push(
                    DescribeLogDirsPartition::default()
                        .with_partition_index(p.index)
                        .with_partition_size(size)
                        .with_offset_lag(0)
                        .with_is_future_key(false),
                );
            }
        }
        if lp.is_empty() {
            continue;
        }
        let name = TopicName(sb(h.name.clone()));
        local.push(
            DescribeLogDirsTopic::default()
                .with_name(name.clone())
                .with_partitions(lp),
        );
        remote.push(
            DescribeLogDirsTopic::default()
                .with_name(name)
                .with_partitions(rp),
        );
    }
    let data_dir = b.config.data_dir.display().to_string();
    let (total, usable) = disk_space(&b.config.data_dir).unwrap_or((-1, -1));
    DescribeLogDirsResponse::default().with_results(vec![
        DescribeLogDirsResult::default()
            .with_log_dir(sb(data_dir))
            .with_topics(local)
            .with_total_bytes(total)
            .with_usable_bytes(usable),
        DescribeLogDirsResult::default()
            .with_log_dir(sb(OBJECT_STORAGE_DIR))
            .with_topics(remote)
            // A bucket has no size to report.
            .with_total_bytes(-1)
            .with_usable_bytes(-1),
    ])
}

/// Total and available bytes of the filesystem holding `dir`.
fn disk_space(dir: &std::path::Path) -> Option<(i64, i64)> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a NUL-terminated string and `st` a valid out pointer.
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let frsize = st.f_frsize as i64;
    Some((
        (st.f_blocks as i64).saturating_mul(frsize),
        (st.f_bavail as i64).saturating_mul(frsize),
    ))
}
