//! The live thread actors the registry knows, by thread and by recency of use, so the least
//! recently used are found without looking at every actor. (Beyond `max_live`, each new actor
//! used to collect and partly sort all of them: about a fifth of the server's CPU when every
//! turn started a thread, `benches/results/profile-server-new-threads.txt`.)

use std::collections::{BTreeMap, HashMap};

use crate::ids::ThreadId;

/// One live actor: its address (`A`) and the id telling it from a later actor of its thread.
pub(crate) struct LiveActor<A> {
    pub addr: A,
    pub actor_id: u64,
    last_used: u64,
}

pub(crate) struct LiveActors<A> {
    by_thread: HashMap<ThreadId, LiveActor<A>>,
    /// Thread of each `last_used` stamp, oldest first.
    by_use: BTreeMap<u64, ThreadId>,
    clock: u64,
}

impl<A> Default for LiveActors<A> {
    fn default() -> Self {
        LiveActors {
            by_thread: HashMap::new(),
            by_use: BTreeMap::new(),
            clock: 0,
        }
    }
}

impl<A> LiveActors<A> {
    pub fn len(&self) -> usize {
        self.by_thread.len()
    }

    /// Registers `thread_id`'s actor as the most recently used, replacing any earlier one.
    pub fn insert(&mut self, thread_id: ThreadId, addr: A, actor_id: u64) {
        let last_used = self.tick();
        self.by_use.insert(last_used, thread_id.clone());
        let actor = LiveActor {
            addr,
            actor_id,
            last_used,
        };
        if let Some(earlier) = self.by_thread.insert(thread_id, actor) {
            self.by_use.remove(&earlier.last_used);
        }
    }

    /// `thread_id`'s actor, marked as used now.
    pub fn touch(&mut self, thread_id: &ThreadId) -> Option<&LiveActor<A>> {
        let now = self.tick();
        let actor = self.by_thread.get_mut(thread_id)?;
        self.by_use.remove(&actor.last_used);
        self.by_use.insert(now, thread_id.clone());
        actor.last_used = now;
        Some(actor)
    }

    pub fn get(&self, thread_id: &ThreadId) -> Option<&LiveActor<A>> {
        self.by_thread.get(thread_id)
    }

    /// Forgets `thread_id`'s actor if it is still `actor_id` (a later one stays); true if so.
    pub fn remove(&mut self, thread_id: &ThreadId, actor_id: u64) -> bool {
        match self.by_thread.get(thread_id) {
            Some(actor) if actor.actor_id == actor_id => {
                self.by_use.remove(&actor.last_used);
                self.by_thread.remove(thread_id);
                true
            }
            _ => false,
        }
    }

    pub fn actors(&self) -> impl Iterator<Item = &LiveActor<A>> {
        self.by_thread.values()
    }

    /// The `n` least recently used actors, oldest first.
    pub fn least_recently_used(&self, n: usize) -> impl Iterator<Item = &LiveActor<A>> {
        self.by_use
            .values()
            .take(n)
            .filter_map(|thread_id| self.by_thread.get(thread_id))
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u32) -> ThreadId {
        ThreadId::parse(format!("thr_{n:08}")).unwrap()
    }

    fn oldest(live: &LiveActors<u32>, n: usize) -> Vec<u32> {
        live.least_recently_used(n).map(|a| a.addr).collect()
    }

    #[test]
    fn the_least_recently_used_come_first_and_use_moves_an_actor_to_the_end() {
        let mut live = LiveActors::default();
        for n in 1..=4 {
            live.insert(id(n), n, u64::from(n));
        }
        assert_eq!(oldest(&live, 2), [1, 2]);
        assert_eq!(live.touch(&id(1)).map(|a| a.addr), Some(1));
        assert_eq!(oldest(&live, 2), [2, 3]);
        assert_eq!(oldest(&live, 9), [2, 3, 4, 1]);
        assert!(live.touch(&id(9)).is_none());
    }

    #[test]
    fn only_the_registered_actor_of_a_thread_is_forgotten() {
        let mut live = LiveActors::default();
        live.insert(id(1), 10, 1);
        // The thread's actor retired and a new one started: the old one's retirement (a late
        // `Retired`) must not forget the new one.
        live.insert(id(1), 11, 2);
        assert_eq!(live.len(), 1);
        assert_eq!(oldest(&live, 5), [11]);
        assert!(!live.remove(&id(1), 1));
        assert_eq!(live.get(&id(1)).map(|a| a.addr), Some(11));
        assert!(live.remove(&id(1), 2));
        assert_eq!(live.len(), 0);
        assert!(oldest(&live, 5).is_empty());
    }
}
