//! Pure bookkeeping for foreign-table writes that follow the Postgres transaction (no pgrx):
//! which subtransaction produced what, and how much is buffered.
//!
//! Postgres numbers subtransactions within a top-level transaction (`SubTransactionId`, the
//! top level is [`TOP_SUB`]). When a subtransaction commits, what it did becomes its parent's;
//! when it aborts, what it did (and what its committed children did, already handed to it) is
//! undone. Children always end before their parent, so tagging each write with the id of the
//! subtransaction current when it was made, re-tagging on commit and dropping on abort is exact.
//!
//! - [`SubTagged`]: buffered items (Elasticsearch bulk actions) with their subtransaction and
//!   size; an aborted subtransaction's items are discarded.
//! - [`SubMarks`]: which subtransactions wrote at all (Kafka, where a message cannot be taken
//!   back: an aborted subtransaction that wrote dooms the whole transaction).

/// A Postgres `SubTransactionId`.
pub type SubId = u32;

/// The subtransaction id of the top level of a transaction (`TopSubTransactionId`).
pub const TOP_SUB: SubId = 1;

/// What the Postgres glue tells a wrapper about the transaction (see
/// `fdw::pg::xact`). Hooks run for every transaction of a backend once the wrapper wrote
/// anything in it; they look at their own state and return at once when nothing is pending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XactEvent {
    /// The transaction is about to commit: send or commit the remote side now. An error
    /// aborts the Postgres transaction (and then [`XactEvent::Abort`] follows).
    PreCommit,
    /// `PREPARE TRANSACTION`: a wrapper with pending writes refuses (two-phase commit is not
    /// supported).
    PrePrepare,
    /// The transaction aborted (also after a failed `PreCommit`): discard, never raise.
    Abort,
    /// Subtransaction `sub` committed into `parent`.
    SubCommit { sub: SubId, parent: SubId },
    /// Subtransaction `sub` (child of `parent`) rolled back.
    SubAbort { sub: SubId, parent: SubId },
}

/// Items tagged with the subtransaction that produced them, in the order they were added,
/// with their total size.
#[derive(Debug)]
pub struct SubTagged<T> {
    items: Vec<(SubId, usize, T)>,
    bytes: usize,
}

impl<T> Default for SubTagged<T> {
    fn default() -> Self {
        SubTagged {
            items: Vec::new(),
            bytes: 0,
        }
    }
}

impl<T> SubTagged<T> {
    /// Would adding `more` bytes exceed `limit`?
    pub fn would_exceed(&self, more: usize, limit: usize) -> bool {
        self.bytes.saturating_add(more) > limit
    }

    pub fn push(&mut self, sub: SubId, bytes: usize, item: T) {
        self.bytes = self.bytes.saturating_add(bytes);
        self.items.push((sub, bytes, item));
    }

    /// Subtransaction `sub` committed: its items now belong to `parent`.
    pub fn commit_sub(&mut self, sub: SubId, parent: SubId) {
        for it in self.items.iter_mut().filter(|it| it.0 == sub) {
            it.0 = parent;
        }
    }

    /// Subtransaction `sub` aborted: its items are dropped; returns how many.
    pub fn abort_sub(&mut self, sub: SubId) -> usize {
        let before = self.items.len();
        let mut freed = 0usize;
        self.items.retain(|it| {
            let keep = it.0 != sub;
            if !keep {
                freed += it.1;
            }
            keep
        });
        self.bytes -= freed.min(self.bytes);
        before - self.items.len()
    }

    /// Every item, in order, leaving the buffer empty.
    pub fn take_all(&mut self) -> Vec<T> {
        self.bytes = 0;
        std::mem::take(&mut self.items)
            .into_iter()
            .map(|(_, _, it)| it)
            .collect()
    }

    pub fn clear(&mut self) {
        self.items.clear();
        self.bytes = 0;
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

/// The subtransactions that wrote something that cannot be withdrawn, and whether one of them
/// rolled back (which dooms the transaction).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SubMarks {
    subs: Vec<SubId>,
    doomed: bool,
}

impl SubMarks {
    /// A write happened in subtransaction `sub`.
    pub fn mark(&mut self, sub: SubId) {
        if !self.subs.contains(&sub) {
            self.subs.push(sub);
        }
    }

    pub fn commit_sub(&mut self, sub: SubId, parent: SubId) {
        if let Some(i) = self.subs.iter().position(|s| *s == sub) {
            self.subs.swap_remove(i);
            self.mark(parent);
        }
    }

    /// Subtransaction `sub` rolled back; returns true if it had written (the transaction is
    /// then doomed).
    pub fn abort_sub(&mut self, sub: SubId) -> bool {
        match self.subs.iter().position(|s| *s == sub) {
            Some(i) => {
                self.subs.swap_remove(i);
                self.doomed = true;
                true
            }
            None => false,
        }
    }

    pub fn doomed(&self) -> bool {
        self.doomed
    }

    pub fn wrote(&self) -> bool {
        !self.subs.is_empty() || self.doomed
    }

    pub fn clear(&mut self) {
        self.subs.clear();
        self.doomed = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aborted_subtransactions_lose_exactly_their_items() {
        let mut b = SubTagged::default();
        b.push(TOP_SUB, 10, "a");
        b.push(2, 20, "b"); // SAVEPOINT s1
        b.push(3, 30, "c"); // SAVEPOINT s2 (child of 2)
        b.commit_sub(3, 2); // RELEASE s2: c belongs to s1 now
        b.push(4, 40, "d"); // SAVEPOINT s3 (child of 2)
        assert_eq!(b.abort_sub(4), 1); // ROLLBACK TO s3
        assert_eq!(b.bytes(), 60);
        assert_eq!(b.abort_sub(2), 2); // ROLLBACK TO s1: b and c
        assert_eq!(b.bytes(), 10);
        b.push(5, 5, "e");
        b.commit_sub(5, TOP_SUB);
        assert_eq!(b.abort_sub(5), 0);
        assert_eq!(b.len(), 2);
        assert_eq!(b.take_all(), vec!["a", "e"]);
        assert!(b.is_empty());
        assert_eq!(b.bytes(), 0);
    }

    #[test]
    fn budget_counts_what_is_buffered() {
        let mut b = SubTagged::default();
        assert!(!b.would_exceed(100, 100));
        assert!(b.would_exceed(101, 100));
        b.push(2, 60, ());
        assert!(b.would_exceed(41, 100));
        assert!(!b.would_exceed(40, 100));
        b.abort_sub(2);
        assert!(!b.would_exceed(100, 100));
        assert!(!b.would_exceed(usize::MAX, usize::MAX));
        b.push(TOP_SUB, usize::MAX - 1, ());
        b.push(TOP_SUB, 5, ()); // saturates instead of overflowing
        assert_eq!(b.bytes(), usize::MAX);
        assert!(b.would_exceed(1, usize::MAX - 1));
        b.clear();
        assert_eq!(b.bytes(), 0);
    }

    #[test]
    fn marks_doom_only_for_subtransactions_that_wrote() {
        let mut m = SubMarks::default();
        assert!(!m.abort_sub(2)); // a savepoint rolled back before any write
        assert!(!m.wrote());
        m.mark(TOP_SUB);
        assert!(!m.abort_sub(3));
        assert!(!m.doomed());
        m.mark(4);
        m.commit_sub(4, 3); // released into 3
        assert!(!m.doomed());
        assert!(m.abort_sub(3)); // rolled back: what 4 wrote cannot be withdrawn
        assert!(m.doomed());
        m.clear();
        assert!(!m.doomed() && !m.wrote());
        m.mark(6);
        m.commit_sub(6, TOP_SUB);
        assert!(!m.abort_sub(6));
        assert!(m.wrote() && !m.doomed());
    }
}
