//! Learned routes travel to the portal as deltas between table versions the
//! portal confirmed (see `lastmile_wire::RoutesUpdate`). The agent keeps the
//! last table the portal confirmed and diffs the speaker's table against
//! it. A report that is lost changes nothing here, so the next delta still
//! starts from what the portal holds; if the portal did apply it after all,
//! it sees a base it no longer holds and asks for the whole table.

use lastmile_bgp::Route;
use lastmile_wire::{LearnedRoute, RoutesUpdate, WithdrawnRoute};
use rand::Rng;
use std::collections::HashMap;

type Key = (String, String);

#[derive(Default)]
pub struct RouteSync {
    confirmed: Option<(u64, HashMap<Key, LearnedRoute>)>,
    /// Bumped by every reset, so a confirmation of an update built before
    /// the reset is ignored.
    epoch: u64,
}

/// An update on its way, and the table it leads to.
pub struct PendingUpdate {
    pub update: RoutesUpdate,
    table: HashMap<Key, LearnedRoute>,
    epoch: u64,
}

impl RouteSync {
    /// Forget what the portal holds: the next update is the whole table.
    pub fn reset(&mut self) {
        self.confirmed = None;
        self.epoch += 1;
    }

    /// The changes from the confirmed table to `routes`, or `None` when
    /// there are none.
    pub fn next_update(&self, routes: &[Route]) -> Option<PendingUpdate> {
        let table: HashMap<Key, LearnedRoute> = routes
            .iter()
            .map(|r| {
                let learned = LearnedRoute {
                    prefix: r.prefix.to_string(),
                    neighbor: r.peer.to_string(),
                    next_hop: r.next_hop.to_string(),
                    as_path: r.as_path.clone(),
                };
                ((learned.prefix.clone(), learned.neighbor.clone()), learned)
            })
            .collect();
        let (base, announced, withdrawn) = match &self.confirmed {
            None => (
                None,
                table.values().cloned().collect::<Vec<_>>(),
                Vec::new(),
            ),
            Some((version, old)) => {
                let announced: Vec<LearnedRoute> = table
                    .iter()
                    .filter(|(k, v)| old.get(*k) != Some(*v))
                    .map(|(_, v)| v.clone())
                    .collect();
                let withdrawn: Vec<WithdrawnRoute> = old
                    .keys()
                    .filter(|k| !table.contains_key(*k))
                    .map(|(prefix, neighbor)| WithdrawnRoute {
                        prefix: prefix.clone(),
                        neighbor: neighbor.clone(),
                    })
                    .collect();
                if announced.is_empty() && withdrawn.is_empty() {
                    return None;
                }
                (Some(*version), announced, withdrawn)
            }
        };
        Some(PendingUpdate {
            update: RoutesUpdate {
                version: rand::thread_rng().gen_range(1..u64::MAX >> 1),
                base,
                announced,
                withdrawn,
            },
            table,
            epoch: self.epoch,
        })
    }

    /// The portal applied `pending`.
    pub fn confirmed(&mut self, pending: PendingUpdate) {
        if pending.epoch == self.epoch {
            self.confirmed = Some((pending.update.version, pending.table));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(prefix: &str, peer: &str, path: &[u32]) -> Route {
        Route {
            prefix: prefix.parse().unwrap(),
            next_hop: peer.parse().unwrap(),
            as_path: path.to_vec(),
            peer: peer.parse().unwrap(),
        }
    }

    #[test]
    fn deltas_start_from_what_the_portal_confirmed() {
        let mut sync = RouteSync::default();
        let a = route("10.0.0.0/24", "192.0.2.1", &[65000]);
        let b = route("10.0.1.0/24", "192.0.2.1", &[65000]);
        let first = sync.next_update(&[a.clone(), b.clone()]).unwrap();
        assert_eq!(first.update.base, None);
        assert_eq!(first.update.announced.len(), 2);
        let first_version = first.update.version;
        sync.confirmed(first);
        assert!(sync.next_update(&[a.clone(), b.clone()]).is_none());

        // b withdrawn, a's path changed: one announcement, one withdrawal.
        let a2 = route("10.0.0.0/24", "192.0.2.1", &[65000, 65001]);
        let lost = sync.next_update(std::slice::from_ref(&a2)).unwrap();
        assert_eq!(lost.update.base, Some(first_version));
        assert_eq!(
            lost.update.announced,
            vec![lost.update.announced[0].clone()]
        );
        assert_eq!(lost.update.announced[0].as_path, [65000, 65001]);
        assert_eq!(lost.update.withdrawn.len(), 1);
        // Not confirmed (lost): the next delta starts from the same base.
        let again = sync.next_update(&[a2]).unwrap();
        assert_eq!(again.update.base, Some(first_version));
    }

    #[test]
    fn a_reset_sends_everything_and_voids_older_confirmations() {
        let mut sync = RouteSync::default();
        let a = route("10.0.0.0/24", "192.0.2.1", &[65000]);
        let before = sync.next_update(std::slice::from_ref(&a)).unwrap();
        sync.reset();
        sync.confirmed(before);
        let after = sync.next_update(&[a]).unwrap();
        assert_eq!(
            after.update.base, None,
            "the stale confirmation was ignored"
        );
    }
}
