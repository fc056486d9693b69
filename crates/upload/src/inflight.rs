//! Uploads in progress, bounded per owner (`[upload] max_uploads_per_user`) and per node
//! (`[upload] max_in_flight_bytes`). A quota counts recorded files only, so without this an
//! account could take many slots and send them all at once, filling the disk with partial
//! files far past its quota before any of them is recorded and refused; with it, an upload
//! starts only if the owner's recorded files, its uploads in progress and this one fit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The node's uploads in progress.
#[derive(Debug)]
pub(crate) struct InFlight {
    table: Mutex<Table>,
    max_per_owner: usize,
    max_bytes: u64,
}

#[derive(Debug, Default)]
struct Table {
    /// Per owner: uploads and their bytes.
    owners: HashMap<String, (usize, u64)>,
    bytes: u64,
}

/// One upload's place in the table, given back when dropped (the upload ended, however).
#[derive(Debug)]
pub(crate) struct Reservation {
    table: Arc<InFlight>,
    owner: String,
    bytes: u64,
}

/// Why an upload may not start now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Busy {
    /// The owner has `max_uploads_per_user` in progress.
    Owner,
    /// The node has `max_in_flight_bytes` in progress.
    Node,
}

impl InFlight {
    pub(crate) fn new(max_per_owner: usize, max_bytes: u64) -> Arc<InFlight> {
        Arc::new(InFlight {
            table: Mutex::new(Table::default()),
            max_per_owner: max_per_owner.max(1),
            max_bytes,
        })
    }

    /// Takes a place for `bytes` of `owner`'s; with the owner's uploads and bytes in
    /// progress before it, for the quota check.
    pub(crate) fn reserve(
        self: &Arc<Self>,
        owner: &str,
        bytes: u64,
    ) -> Result<(Reservation, (usize, u64)), Busy> {
        let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let before = t.owners.get(owner).copied().unwrap_or((0, 0));
        if before.0 >= self.max_per_owner {
            return Err(Busy::Owner);
        }
        if t.bytes.saturating_add(bytes) > self.max_bytes {
            return Err(Busy::Node);
        }
        t.bytes += bytes;
        let entry = t.owners.entry(owner.to_owned()).or_insert((0, 0));
        entry.0 += 1;
        entry.1 += bytes;
        let reservation = Reservation {
            table: self.clone(),
            owner: owner.to_owned(),
            bytes,
        };
        Ok((reservation, before))
    }

    #[cfg(test)]
    pub(crate) fn bytes(&self) -> u64 {
        self.table.lock().unwrap_or_else(|e| e.into_inner()).bytes
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut t = self.table.table.lock().unwrap_or_else(|e| e.into_inner());
        t.bytes = t.bytes.saturating_sub(self.bytes);
        if let Some(entry) = t.owners.get_mut(&self.owner) {
            entry.0 = entry.0.saturating_sub(1);
            entry.1 = entry.1.saturating_sub(self.bytes);
            if entry.0 == 0 {
                t.owners.remove(&self.owner);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_bounded_per_owner_and_node_and_given_back() {
        let f = InFlight::new(2, 100);
        let (a1, before) = f.reserve("a", 10).unwrap();
        assert_eq!(before, (0, 0));
        let (a2, before) = f.reserve("a", 20).unwrap();
        assert_eq!(before, (1, 10));
        assert_eq!(f.reserve("a", 1).unwrap_err(), Busy::Owner);
        assert_eq!(f.reserve("b", 71).unwrap_err(), Busy::Node);
        let (b, _) = f.reserve("b", 70).unwrap();
        drop(a1);
        assert_eq!(
            f.reserve("a", 1).map(|(_, before)| before).unwrap(),
            (1, 20)
        );
        drop((a2, b));
        assert_eq!(f.bytes(), 0);
    }
}
