//! The live thread actors the registry knows, by thread and by recency of use, so the least
//! recently used are found without looking at every actor. (Beyond `max_live`, each new actor
//! used to collect and partly sort all of them: about a fifth of the server's CPU when every
//! turn started a thread, `benches/results/profile-server-new-threads.txt`.)
//!
//! The registry also publishes them in a [`LiveDirectory`] any thread can read, so a message
//! for a live thread goes straight to its actor instead of through the registry (two fewer
//! cross-thread hops per follow-up). A message sent that way counts as a use: the actor is
//! given a second chance before it is chosen to retire.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use crate::ids::ThreadId;

/// One live actor: its address (`A`) and the id telling it from a later actor of its thread.
pub(crate) struct LiveActor<A> {
    pub addr: A,
    pub actor_id: u64,
    last_used: u64,
}

pub(crate) struct LiveActors<A> {
    by_thread: HashMap<ThreadId, LiveActor<A>>,
    /// Thread of each `last_used` stamp, oldest first: the actors not yet told to retire.
    by_use: BTreeMap<u64, ThreadId>,
    clock: u64,
    /// The same actors, for readers on other threads.
    published: LiveDirectory<A>,
}

impl<A> Default for LiveActors<A> {
    fn default() -> Self {
        LiveActors {
            by_thread: HashMap::new(),
            by_use: BTreeMap::new(),
            clock: 0,
            published: LiveDirectory::default(),
        }
    }
}

impl<A: Clone> LiveActors<A> {
    /// Publishing every actor in `directory` too.
    pub fn publishing_to(directory: LiveDirectory<A>) -> Self {
        LiveActors {
            published: directory,
            ..LiveActors::default()
        }
    }

    #[cfg(test)]
    fn directory(&self) -> LiveDirectory<A> {
        self.published.clone()
    }

    pub fn len(&self) -> usize {
        self.by_thread.len()
    }

    /// The actors not yet told to retire.
    pub fn staying(&self) -> usize {
        self.by_use.len()
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
        self.published
            .publish(&thread_id, actor.addr.clone(), actor.actor_id);
        if let Some(earlier) = self.by_thread.insert(thread_id, actor) {
            self.by_use.remove(&earlier.last_used);
        }
    }

    /// `thread_id`'s actor, marked as used now (one told to retire stays so).
    pub fn touch(&mut self, thread_id: &ThreadId) -> Option<&LiveActor<A>> {
        let now = self.tick();
        let actor = self.by_thread.get_mut(thread_id)?;
        if self.by_use.remove(&actor.last_used).is_none() {
            return Some(actor);
        }
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
                self.published.withdraw(thread_id);
                true
            }
            _ => false,
        }
    }

    pub fn actors(&self) -> impl Iterator<Item = &LiveActor<A>> {
        self.by_thread.values()
    }

    /// The `n` least recently used actors, oldest first, told to retire: they stay routable
    /// until they are removed, but are not chosen again (an actor asked once retires, if
    /// busy when its turn ends). An actor reached through the directory since the registry
    /// last looked counts as used now (second chance).
    pub fn retire_least_recently_used(&mut self, n: usize) -> Vec<A> {
        let mut chosen = Vec::with_capacity(n);
        // Bounded: a second chance clears the mark, so twice round is enough even while
        // readers mark actors meanwhile.
        let mut looked = 0;
        while chosen.len() < n && looked < 2 * self.by_use.len() {
            let Some((_, thread_id)) = self.by_use.pop_first() else {
                break;
            };
            looked += 1;
            if self.published.take_use(&thread_id) {
                let now = self.tick();
                self.by_use.insert(now, thread_id.clone());
                if let Some(actor) = self.by_thread.get_mut(&thread_id) {
                    actor.last_used = now;
                }
            } else if let Some(actor) = self.by_thread.get(&thread_id) {
                chosen.push(actor.addr.clone());
            }
        }
        chosen
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }
}

/// The live actors by thread, readable from any thread; written by the registry only.
pub(crate) struct LiveDirectory<A> {
    actors: Arc<RwLock<HashMap<ThreadId, Published<A>>>>,
}

struct Published<A> {
    addr: A,
    actor_id: u64,
    /// Reached through the directory since the registry last looked.
    used: AtomicBool,
}

impl<A> Clone for LiveDirectory<A> {
    fn clone(&self) -> Self {
        LiveDirectory {
            actors: self.actors.clone(),
        }
    }
}

impl<A> Default for LiveDirectory<A> {
    fn default() -> Self {
        LiveDirectory {
            actors: Arc::default(),
        }
    }
}

impl<A: Clone> LiveDirectory<A> {
    /// The live actor of `thread_id` and its id, marked as used.
    pub fn lookup(&self, thread_id: &ThreadId) -> Option<(A, u64)> {
        let actors = self.actors.read().unwrap_or_else(|e| e.into_inner());
        let published = actors.get(thread_id)?;
        published.used.store(true, Ordering::Relaxed);
        Some((published.addr.clone(), published.actor_id))
    }

    fn publish(&self, thread_id: &ThreadId, addr: A, actor_id: u64) {
        let published = Published {
            addr,
            actor_id,
            used: AtomicBool::new(false),
        };
        let mut actors = self.actors.write().unwrap_or_else(|e| e.into_inner());
        actors.insert(thread_id.clone(), published);
    }

    fn withdraw(&self, thread_id: &ThreadId) {
        let mut actors = self.actors.write().unwrap_or_else(|e| e.into_inner());
        actors.remove(thread_id);
    }

    /// Whether `thread_id`'s actor was reached through the directory since the last call.
    fn take_use(&self, thread_id: &ThreadId) -> bool {
        let actors = self.actors.read().unwrap_or_else(|e| e.into_inner());
        actors
            .get(thread_id)
            .is_some_and(|p| p.used.swap(false, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u32) -> ThreadId {
        ThreadId::parse(format!("thr_{n:08}")).unwrap()
    }

    #[test]
    fn the_least_recently_used_are_told_to_retire_once_and_use_moves_an_actor_to_the_end() {
        let mut live = LiveActors::default();
        for n in 1..=4 {
            live.insert(id(n), n, u64::from(n));
        }
        assert_eq!(live.touch(&id(1)).map(|a| a.addr), Some(1));
        assert_eq!(live.retire_least_recently_used(2), [2, 3]);
        // Told once: the next ones are chosen, not the same again.
        assert_eq!(live.retire_least_recently_used(2), [4, 1]);
        assert_eq!((live.len(), live.staying()), (4, 0));
        // Still routable until removed, and a use does not bring it back.
        assert_eq!(live.touch(&id(2)).map(|a| a.addr), Some(2));
        assert!(live.retire_least_recently_used(9).is_empty());
        assert!(live.remove(&id(2), 2));
        assert_eq!(live.len(), 3);
        assert!(live.touch(&id(9)).is_none());
    }

    #[test]
    fn only_the_registered_actor_of_a_thread_is_forgotten() {
        let mut live = LiveActors::default();
        live.insert(id(1), 10, 1);
        // The thread's actor retired and a new one started: the old one's retirement (a late
        // `Retired`) must not forget the new one, which may be chosen in its turn.
        assert_eq!(live.retire_least_recently_used(1), [10]);
        live.insert(id(1), 11, 2);
        assert_eq!((live.len(), live.staying()), (1, 1));
        assert!(!live.remove(&id(1), 1));
        assert_eq!(live.get(&id(1)).map(|a| a.addr), Some(11));
        assert_eq!(live.retire_least_recently_used(5), [11]);
        assert!(live.remove(&id(1), 2));
        assert_eq!(live.len(), 0);
        assert!(live.retire_least_recently_used(5).is_empty());
    }

    #[test]
    fn the_directory_shows_the_registered_actors_and_a_use_through_it_is_a_second_chance() {
        let mut live = LiveActors::default();
        let directory = live.directory();
        for n in 1..=4 {
            live.insert(id(n), n, u64::from(n));
        }
        assert_eq!(directory.lookup(&id(2)), Some((2, 2)));
        assert_eq!(directory.lookup(&id(9)), None);
        // 2 was reached through the directory: 1 and 3 are the oldest now, 2 the newest.
        assert_eq!(live.retire_least_recently_used(2), [1, 3]);
        // Both left used: each gets its second chance once, then the order stands.
        directory.lookup(&id(2));
        directory.lookup(&id(4));
        assert_eq!(live.retire_least_recently_used(1), [4]);
        live.insert(id(1), 11, 5);
        assert_eq!(directory.lookup(&id(1)), Some((11, 5)), "the later actor");
        assert!(!live.remove(&id(1), 1));
        assert!(live.remove(&id(1), 5));
        assert_eq!(directory.lookup(&id(1)), None, "withdrawn with the actor");
        assert_eq!(live.retire_least_recently_used(9), [2]);
    }
}
