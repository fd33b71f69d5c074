//! The index of registered members by name (`instance/process`), looked up
//! on every message addressed `Address::Member` without building an owned
//! key.

use std::collections::BTreeMap;

/// Member ids by instance, then process.
#[derive(Debug, Default)]
pub(super) struct Names(BTreeMap<String, BTreeMap<String, u64>>);

impl Names {
    /// The member registered as `instance/process`.
    pub(super) fn get(&self, instance: &str, process: &str) -> Option<u64> {
        self.0.get(instance)?.get(process).copied()
    }

    /// Registers `instance/process` as `id` (replacing an earlier one).
    pub(super) fn insert(&mut self, instance: &str, process: &str, id: u64) {
        self.0
            .entry(instance.to_owned())
            .or_default()
            .insert(process.to_owned(), id);
    }

    /// Forgets `instance/process` (an instance left with no process is
    /// dropped, so that the index never outgrows the view).
    pub(super) fn remove(&mut self, instance: &str, process: &str) {
        if let Some(procs) = self.0.get_mut(instance) {
            procs.remove(process);
            if procs.is_empty() {
                self.0.remove(instance);
            }
        }
        debug_assert!(self.get(instance, process).is_none());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_get_replace_remove() {
        let mut n = Names::default();
        n.insert("a", "p", 1);
        n.insert("a", "q", 2);
        assert_eq!(n.get("a", "p"), Some(1));
        n.insert("a", "p", 3);
        assert_eq!(n.get("a", "p"), Some(3));
        assert_eq!(n.get("b", "p"), None);
        n.remove("a", "p");
        assert_eq!(n.get("a", "p"), None);
        assert_eq!(n.get("a", "q"), Some(2));
        n.remove("a", "q");
        assert!(n.0.is_empty());
    }
}
