//! Incremental reconciliation of one member towards its target assignment
//! (Kafka's `CurrentAssignmentBuilder`): partitions to give up are revoked
//! first, at the member's current epoch; only once the member has
//! acknowledged their revocation does it move to the target epoch, and a
//! partition still owned by another member is withheld until that member
//! releases it. A pure function over plain data.

use std::collections::BTreeSet;

use uuid::Uuid;

use crate::meta::consumer_groups::{Assignment, ConsumerMember, MemberState};

/// Whether `owned` (the partitions the client says it holds) still holds
/// any of `revoking`. `None` (not sent) counts as still holding them.
fn still_owns(owned: Option<&Assignment>, revoking: &Assignment) -> bool {
    let Some(owned) = owned else {
        return true;
    };
    revoking.iter().any(|(t, parts)| {
        owned
            .get(t)
            .is_some_and(|o| parts.iter().any(|p| o.contains(p)))
    })
}

/// Whether every partition of `a` is in `b`.
pub fn is_subset(a: &Assignment, b: &Assignment) -> bool {
    a.iter()
        .all(|(t, parts)| parts.is_empty() || b.get(t).is_some_and(|bp| parts.is_subset(bp)))
}

/// Moves `m` one step towards `target` (its part of the target assignment
/// computed at `target_epoch`). `owned_elsewhere(t, p)` says whether another
/// member still holds (or is revoking) a partition; `owned` is what the
/// client reported in this heartbeat, if it did.
pub fn reconcile(
    m: &mut ConsumerMember,
    target_epoch: i32,
    target: &Assignment,
    owned: Option<&Assignment>,
    owned_elsewhere: impl Fn(Uuid, i32) -> bool,
) {
    m.target = target.clone();
    match m.state {
        MemberState::Stable if m.member_epoch == target_epoch => return,
        MemberState::UnrevokedPartitions => {
            if still_owns(owned, &m.pending_revocation) {
                return;
            }
            m.pending_revocation.clear();
        }
        _ => {}
    }
    next(m, target_epoch, target, owned, owned_elsewhere);
}

fn next(
    m: &mut ConsumerMember,
    target_epoch: i32,
    target: &Assignment,
    owned: Option<&Assignment>,
    owned_elsewhere: impl Fn(Uuid, i32) -> bool,
) {
    let topics: BTreeSet<Uuid> = target.keys().chain(m.assigned.keys()).copied().collect();
    let mut keep = Assignment::new();
    let mut revoke = Assignment::new();
    let mut pending = Assignment::new();
    let mut unreleased = false;
    let none = BTreeSet::new();
    for t in topics {
        let want = target.get(&t).unwrap_or(&none);
        let have = m.assigned.get(&t).unwrap_or(&none);
        let k: BTreeSet<i32> = have.intersection(want).copied().collect();
        let r: BTreeSet<i32> = have.difference(want).copied().collect();
        let mut a = BTreeSet::new();
        for p in want.difference(have) {
            if owned_elsewhere(t, *p) {
                unreleased = true;
            } else {
                a.insert(*p);
            }
        }
        if !k.is_empty() {
            keep.insert(t, k);
        }
        if !r.is_empty() {
            revoke.insert(t, r);
        }
        if !a.is_empty() {
            pending.insert(t, a);
        }
    }
    if !revoke.is_empty() && still_owns(owned, &revoke) {
        // Revoke first, at the current epoch.
        m.state = MemberState::UnrevokedPartitions;
        m.assigned = keep;
        m.pending_revocation = revoke;
        return;
    }
    for (t, parts) in pending {
        keep.entry(t).or_default().extend(parts);
    }
    if m.member_epoch != target_epoch {
        m.previous_member_epoch = m.member_epoch;
        m.member_epoch = target_epoch;
    }
    m.assigned = keep;
    m.pending_revocation.clear();
    m.state = if unreleased {
        MemberState::UnreleasedPartitions
    } else {
        MemberState::Stable
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(id: u128) -> Uuid {
        Uuid::from_u128(id)
    }

    fn a(parts: &[(u128, &[i32])]) -> Assignment {
        parts
            .iter()
            .map(|(id, ps)| (t(*id), ps.iter().copied().collect()))
            .collect()
    }

    fn member(epoch: i32, assigned: Assignment) -> ConsumerMember {
        ConsumerMember {
            member_id: "m".into(),
            member_epoch: epoch,
            previous_member_epoch: epoch - 1,
            assigned,
            ..Default::default()
        }
    }

    #[test]
    fn a_new_member_gets_free_partitions_at_the_target_epoch() {
        let mut m = member(0, Assignment::new());
        reconcile(&mut m, 5, &a(&[(1, &[0, 1])]), Some(&a(&[])), |_, _| false);
        assert_eq!((m.member_epoch, m.state), (5, MemberState::Stable));
        assert_eq!(m.assigned, a(&[(1, &[0, 1])]));
    }

    #[test]
    fn revocation_comes_before_the_new_epoch() {
        let mut m = member(3, a(&[(1, &[0, 1, 2])]));
        let target = a(&[(1, &[0]), (2, &[0])]);
        reconcile(&mut m, 4, &target, None, |_, _| false);
        // Epoch unchanged, 1 and 2 to revoke, nothing new yet.
        assert_eq!(m.state, MemberState::UnrevokedPartitions);
        assert_eq!(m.member_epoch, 3);
        assert_eq!(m.assigned, a(&[(1, &[0])]));
        assert_eq!(m.pending_revocation, a(&[(1, &[1, 2])]));
        // A heartbeat without owned partitions, or still holding one: wait.
        reconcile(&mut m, 4, &target, None, |_, _| false);
        assert_eq!(m.state, MemberState::UnrevokedPartitions);
        reconcile(&mut m, 4, &target, Some(&a(&[(1, &[0, 2])])), |_, _| false);
        assert_eq!(m.state, MemberState::UnrevokedPartitions);
        // Acknowledged: new epoch and the new partition.
        reconcile(&mut m, 4, &target, Some(&a(&[(1, &[0])])), |_, _| false);
        assert_eq!((m.member_epoch, m.previous_member_epoch), (4, 3));
        assert_eq!(m.state, MemberState::Stable);
        assert_eq!(m.assigned, target);
        assert!(m.pending_revocation.is_empty());
    }

    #[test]
    fn a_member_that_already_dropped_partitions_skips_revocation() {
        let mut m = member(3, a(&[(1, &[0, 1])]));
        reconcile(
            &mut m,
            4,
            &a(&[(1, &[0])]),
            Some(&a(&[(1, &[0])])),
            |_, _| false,
        );
        assert_eq!((m.member_epoch, m.state), (4, MemberState::Stable));
    }

    #[test]
    fn partitions_owned_elsewhere_wait_until_released() {
        let mut m = member(3, a(&[(1, &[0])]));
        let target = a(&[(1, &[0, 1])]);
        let mut other_holds = true;
        reconcile(&mut m, 4, &target, Some(&a(&[(1, &[0])])), |_, p| {
            other_holds && p == 1
        });
        assert_eq!(
            (m.member_epoch, m.state),
            (4, MemberState::UnreleasedPartitions)
        );
        assert_eq!(m.assigned, a(&[(1, &[0])]));
        other_holds = false;
        reconcile(&mut m, 4, &target, None, |_, p| other_holds && p == 1);
        assert_eq!((m.member_epoch, m.state), (4, MemberState::Stable));
        assert_eq!(m.assigned, target);
    }

    #[test]
    fn stable_at_target_epoch_is_left_alone() {
        let mut m = member(4, a(&[(1, &[0])]));
        let before = m.clone();
        reconcile(&mut m, 4, &a(&[(1, &[0])]), None, |_, _| true);
        m.target = before.target.clone();
        assert_eq!(m, before);
        assert!(is_subset(&a(&[(1, &[0])]), &a(&[(1, &[0, 1])])));
        assert!(!is_subset(&a(&[(2, &[0])]), &a(&[(1, &[0, 1])])));
    }
}
