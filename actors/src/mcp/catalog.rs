//! Tool lists shared by every thread actor of the process, so that a thread opens its MCP
//! session only when the model actually calls one of the server's tools.
//!
//! Without it every new thread opened a session (initialize, initialized, tools/list) on its
//! first turn just to offer the tools to the model, though most turns call none: with the
//! reference's Python task server that was most of the tool server's CPU (benches/README.md).
//! Lists are kept per server and caller (a fingerprint of the caller's token, for servers that
//! receive it: what a token may see can differ), for `tools_cache_secs`; a live session's own
//! list (refreshed on `notifications/tools/list_changed`) always wins and refreshes the entry.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::model::Tool;
use serde_json::Value;

use crate::model::ToolSchema;

use super::BearerToken;

/// Entries kept at most; beyond that, expired ones go first, then everything (a burst of
/// distinct callers only costs them a `tools/list` each).
const MAX_ENTRIES: usize = 10_000;

/// Expired entries are swept when the map has grown to twice its size after the last sweep
/// (and at least this big): callers come and go (tokens are re-signed every few minutes), and
/// their stale entries should not wait for `MAX_ENTRIES`.
const SWEEP_FROM: usize = 1_024;

/// Which list: a server, and who asks (none when the server never sees the caller's token).
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct CatalogKey {
    server: String,
    /// A keyed hash of the token: the token itself is never kept here.
    caller: Option<u64>,
}

/// A listed tool as the model is offered it: converted once when the list arrives (its schema
/// shared), so a turn offering it copies no schema.
#[derive(Clone, Debug, PartialEq)]
pub struct ListedTool {
    pub name: String,
    pub description: Option<String>,
    pub parameters: ToolSchema,
}

/// A server's tools, shared by the catalog, the sessions and every turn.
pub type ToolList = Arc<[ListedTool]>;

/// Converts a `tools/list` answer.
pub fn listed(tools: &[Tool]) -> ToolList {
    tools
        .iter()
        .map(|tool| ListedTool {
            name: tool.name.to_string(),
            description: tool.description.as_ref().map(|d| d.to_string()),
            parameters: ToolSchema::new(&Value::Object((*tool.input_schema).clone())),
        })
        .collect()
}

struct Entry {
    tools: ToolList,
    fetched: Instant,
}

/// The process-wide cache of `tools/list` answers.
#[derive(Default)]
pub struct ToolCatalog {
    entries: Mutex<Entries>,
    /// Random per process, so fingerprints mean nothing outside it.
    hasher: RandomState,
    /// The offer built from the lists last offered, shared by every thread.
    pub offers: super::OfferMemo,
}

#[derive(Default)]
struct Entries {
    by_key: HashMap<CatalogKey, Entry>,
    /// Each server's latest list: most callers see the same tools, and an equal list is
    /// stored as this one (one copy per server, not one per caller).
    latest: HashMap<String, ToolList>,
    /// Sweep expired entries when `by_key` reaches this size.
    sweep_at: usize,
}

impl ToolCatalog {
    pub fn key(&self, server: &str, token: Option<&BearerToken>) -> CatalogKey {
        CatalogKey {
            server: server.to_string(),
            caller: token.map(|t| self.hasher.hash_one(t.expose())),
        }
    }

    /// The list fetched less than `ttl` ago, if any.
    pub fn get(&self, key: &CatalogKey, ttl: Duration) -> Option<ToolList> {
        if ttl.is_zero() {
            return None;
        }
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .by_key
            .get(key)
            .filter(|e| e.fetched.elapsed() < ttl)
            .map(|e| e.tools.clone())
    }

    /// Keeps `tools` for `key`; returns the list as kept (shared with other callers' equal
    /// lists of the same server).
    pub fn put(&self, key: CatalogKey, tools: ToolList, ttl: Duration) -> ToolList {
        if ttl.is_zero() {
            return tools;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let Entries {
            by_key,
            latest,
            sweep_at,
        } = &mut *entries;
        let tools = match latest.get(&key.server) {
            Some(shared) if Arc::ptr_eq(shared, &tools) || **shared == *tools => shared.clone(),
            _ => {
                latest.insert(key.server.clone(), tools.clone());
                tools
            }
        };
        if by_key.len() >= (*sweep_at).max(SWEEP_FROM) && !by_key.contains_key(&key) {
            by_key.retain(|_, e| e.fetched.elapsed() < ttl);
            if by_key.len() >= MAX_ENTRIES {
                by_key.clear();
            }
            *sweep_at = (by_key.len() * 2).min(MAX_ENTRIES);
        }
        by_key.insert(
            key,
            Entry {
                tools: tools.clone(),
                fetched: Instant::now(),
            },
        );
        tools
    }

    /// Drops a list (its server failed, or announced a change).
    pub fn forget(&self, key: &CatalogKey) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.by_key.remove(key);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .by_key
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(name: &str) -> Tool {
        serde_json::from_value(serde_json::json!({
            "name": name, "inputSchema": { "type": "object" }
        }))
        .unwrap()
    }

    #[test]
    fn lists_are_per_server_and_caller_and_expire() {
        let catalog = ToolCatalog::default();
        let ttl = Duration::from_secs(60);
        let alice = BearerToken::new("token-a");
        let bob = BearerToken::new("token-b");
        let key_a = catalog.key("tasks", Some(&alice));
        catalog.put(key_a.clone(), listed(&[tool("add_task")]), ttl);
        assert_eq!(catalog.get(&key_a, ttl).unwrap()[0].name, "add_task");
        assert!(catalog
            .get(&catalog.key("tasks", Some(&bob)), ttl)
            .is_none());
        assert!(catalog
            .get(&catalog.key("other", Some(&alice)), ttl)
            .is_none());
        assert!(catalog.get(&catalog.key("tasks", None), ttl).is_none());
        assert!(
            catalog.get(&key_a, Duration::ZERO).is_none(),
            "0 turns the cache off"
        );
        std::thread::sleep(Duration::from_millis(20));
        assert!(
            catalog.get(&key_a, Duration::from_millis(10)).is_none(),
            "expired"
        );
        catalog.forget(&key_a);
        assert!(catalog.get(&key_a, ttl).is_none());
    }

    #[test]
    fn callers_with_the_same_tools_share_one_list() {
        let catalog = ToolCatalog::default();
        let ttl = Duration::from_secs(60);
        let key = |token: &str| catalog.key("tasks", Some(&BearerToken::new(token)));
        catalog.put(key("a"), listed(&[tool("add_task")]), ttl);
        catalog.put(key("b"), listed(&[tool("add_task")]), ttl);
        let (a, b) = (
            catalog.get(&key("a"), ttl).unwrap(),
            catalog.get(&key("b"), ttl).unwrap(),
        );
        assert!(Arc::ptr_eq(&a, &b), "one copy for equal lists");
        catalog.put(key("c"), listed(&[tool("delete_task")]), ttl);
        let c = catalog.get(&key("c"), ttl).unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(c[0].name, "delete_task");
        assert_eq!(catalog.get(&key("a"), ttl).unwrap()[0].name, "add_task");
        // Another server's equal list is its own.
        catalog.put(catalog.key("other", None), listed(&[tool("add_task")]), ttl);
        let other = catalog.get(&catalog.key("other", None), ttl).unwrap();
        assert_eq!(*other, *a);
    }

    #[test]
    fn expired_callers_are_swept_long_before_the_limit() {
        let catalog = ToolCatalog::default();
        let ttl = Duration::from_millis(50);
        let list = listed(&[tool("add_task")]);
        for i in 0..SWEEP_FROM {
            catalog.put(
                catalog.key("tasks", Some(&BearerToken::new(format!("old-{i}")))),
                list.clone(),
                ttl,
            );
        }
        std::thread::sleep(Duration::from_millis(60));
        catalog.put(
            catalog.key("tasks", Some(&BearerToken::new("new"))),
            list,
            ttl,
        );
        assert_eq!(
            catalog.len(),
            1,
            "the expired callers went when the map had grown"
        );
    }

    #[test]
    fn the_key_never_holds_the_token() {
        let catalog = ToolCatalog::default();
        let key = catalog.key("tasks", Some(&BearerToken::new("secret-token-value")));
        assert!(!format!("{key:?}").contains("secret-token-value"));
    }
}
