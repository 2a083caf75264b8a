//! Keys that match no setting are refused, one line each, naming the closest known key: a
//! misspelt `[modle]` section or `bnd = …` key would otherwise leave the defaults in force
//! without a word. The known keys are those of `config/default.toml` plus the optional ones
//! it only shows in comments.

use std::collections::BTreeSet;
use std::path::Path;

use config::{Value, ValueKind};

/// Keys that have no default (so `default.toml` has them commented out).
const OPTIONAL_KEYS: &[&str] = &[
    "server.playground",
    "database.url",
    "database.listen_url",
    "auth.jwt_secret",
    "auth.public_key_pem",
    "auth.jwks_url",
    "auth.audience",
    "auth.issuer",
    "cluster.instance_id",
    "attachments.public_url",
    "model.reasoning_effort",
    "model.reasoning_summary",
    "transcription.base_url",
    "attachments.signing_key",
    // The old name of agent.max_model_calls, still accepted.
    "agent.max_turns",
    // Refused with its own message (keys come from the environment).
    "model.api_key",
];

/// Lists of tables (`[[mcp.servers]]`) and the keys their entries may have.
const TABLE_LISTS: &[(&str, &[&str])] = &[
    ("agent.client_tools", &["name", "description", "parameters"]),
    (
        "mcp.servers",
        &[
            "name",
            "url",
            "timeout_secs",
            "forward_user_token",
            "headers",
            "tools_cache_secs",
            "widgets",
        ],
    ),
];

/// Top-level lists of tables (`[[models]]`) and the keys their entries may have.
const TOP_LEVEL_LISTS: &[(&str, &[&str])] = &[
    (
        "models",
        &[
            "id",
            "label",
            "model",
            "base_url",
            "api",
            "reasoning_effort",
            "reasoning_summary",
            "timeout_secs",
            "hosted_tools",
        ],
    ),
    (
        "tool_choices",
        &["id", "label", "force", "instructions", "tools"],
    ),
    ("widgets", &["tool", "template"]),
    ("widget_actions", &["type", "tool", "then"]),
];

/// Top-level lists whose entries' keys are passed through as written (`[[hosted_tools]]`: a
/// type and that tool's own API parameters, which the provider checks).
const PASS_THROUGH_LISTS: &[&str] = &["hosted_tools"];

/// Keys inside list entries whose own keys are free (HTTP header names).
const FREE_TABLES: &[&str] = &["headers"];

/// Every key a configuration may set.
pub struct KnownKeys {
    /// `section.key` of every setting.
    keys: BTreeSet<String>,
    sections: BTreeSet<String>,
}

impl KnownKeys {
    pub fn from_defaults(defaults: &str) -> Self {
        let mut keys = BTreeSet::new();
        let table = config::Config::builder()
            .add_source(config::File::from_str(defaults, config::FileFormat::Toml))
            .build()
            .and_then(|c| c.try_deserialize::<config::Map<String, Value>>())
            .expect("config/default.toml parses");
        for (section, value) in table {
            if let ValueKind::Table(entries) = value.kind {
                keys.extend(entries.into_keys().map(|key| format!("{section}.{key}")));
            }
        }
        keys.extend(OPTIONAL_KEYS.iter().map(|k| k.to_string()));
        keys.extend(TABLE_LISTS.iter().map(|(k, _)| k.to_string()));
        let sections = keys
            .iter()
            .filter_map(|k| k.split_once('.').map(|(section, _)| section.to_string()))
            .chain(TOP_LEVEL_LISTS.iter().map(|(name, _)| name.to_string()))
            .chain(PASS_THROUGH_LISTS.iter().map(|name| name.to_string()))
            .collect();
        KnownKeys { keys, sections }
    }

    /// One problem per key of the file (read alone) that matches no setting.
    pub fn check_file(&self, file: &config::Config, path: &Path, problems: &mut Vec<String>) {
        let Ok(table) = file.clone().try_deserialize::<config::Map<String, Value>>() else {
            return;
        };
        let shown = path.display();
        let mut table: Vec<(String, Value)> = table.into_iter().collect();
        table.sort_by(|a, b| a.0.cmp(&b.0));
        for (section, value) in table {
            let section = section.to_lowercase();
            if !self.sections.contains(&section) {
                let hint = suggestion(&section, self.sections.iter(), |s| format!("[{s}]"));
                problems.push(format!("{shown}: unknown section [{section}]{hint}"));
                continue;
            }
            if PASS_THROUGH_LISTS.contains(&section.as_str()) {
                if !matches!(value.kind, ValueKind::Array(_)) {
                    problems.push(format!(
                        "{shown}: {section} must be a list of tables ([[{section}]])"
                    ));
                }
                continue;
            }
            if let Some((_, allowed)) = TOP_LEVEL_LISTS.iter().find(|(k, _)| *k == section) {
                check_list_entries(&section, value, allowed, &shown.to_string(), problems);
                continue;
            }
            let ValueKind::Table(entries) = value.kind else {
                problems.push(format!(
                    "{shown}: {section} must be a section ([{section}])"
                ));
                continue;
            };
            let mut entries: Vec<(String, Value)> = entries.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            for (key, value) in entries {
                let path = format!("{section}.{}", key.to_lowercase());
                if !self.keys.contains(&path) {
                    let hint = suggestion(&path, self.keys.iter(), str::to_string);
                    problems.push(format!("{shown}: unknown key {path}{hint}"));
                } else if let Some((_, allowed)) = TABLE_LISTS.iter().find(|(k, _)| *k == path) {
                    check_list_entries(&path, value, allowed, &shown.to_string(), problems);
                }
            }
        }
    }

    /// One problem per `PREFIX__SECTION__KEY` variable that matches no setting.
    pub fn check_env(
        &self,
        vars: &[(String, String)],
        prefix: &str,
        separator: &str,
        problems: &mut Vec<String>,
    ) {
        let lead = format!("{prefix}{separator}");
        let as_variable =
            |key: &str| format!("{lead}{}", key.replace('.', separator).to_uppercase());
        for (name, _) in vars {
            let Some(rest) = name.strip_prefix(&lead) else {
                continue;
            };
            let path = rest.to_lowercase().replace(separator, ".");
            if !self.keys.contains(&path) {
                let hint = suggestion(&path, self.keys.iter(), as_variable);
                problems.push(format!(
                    "environment variable {name} matches no setting{hint}"
                ));
            }
        }
    }
}

fn check_list_entries(
    list: &str,
    value: Value,
    allowed: &[&str],
    shown: &str,
    problems: &mut Vec<String>,
) {
    let ValueKind::Array(entries) = value.kind else {
        problems.push(format!(
            "{shown}: {list} must be a list of tables ([[{list}]])"
        ));
        return;
    };
    for entry in entries {
        let ValueKind::Table(keys) = entry.kind else {
            problems.push(format!("{shown}: every [[{list}]] entry must be a table"));
            continue;
        };
        for key in keys.keys() {
            let key = key.to_lowercase();
            if !allowed.contains(&key.as_str()) && !FREE_TABLES.contains(&key.as_str()) {
                let hint = suggestion(&key, allowed.iter(), |k| format!("{list}.{k}"));
                problems.push(format!("{shown}: unknown key {list}.{key}{hint}"));
            }
        }
    }
}

/// `; did you mean X?` for the candidate closest to `unknown`, when it is close enough to be
/// a likely misspelling.
fn suggestion<'a, S: AsRef<str> + ?Sized + 'a>(
    unknown: &str,
    candidates: impl Iterator<Item = &'a S>,
    show: impl Fn(&str) -> String,
) -> String {
    let best = candidates
        .map(|c| (edit_distance(unknown, c.as_ref()), c.as_ref()))
        .min_by_key(|(distance, _)| *distance);
    match best {
        Some((distance, candidate)) if distance <= (unknown.chars().count() / 3).max(2) => {
            format!("; did you mean {}?", show(candidate))
        }
        _ => String::new(),
    }
}

/// Levenshtein distance, with a swap of two neighbours counting as one edit (`modle`).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULTS: &str = include_str!("../../config/default.toml");

    fn file_problems(text: &str) -> Vec<String> {
        let known = KnownKeys::from_defaults(DEFAULTS);
        let file = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .unwrap();
        let mut problems = Vec::new();
        known.check_file(&file, Path::new("my.toml"), &mut problems);
        problems
    }

    #[test]
    fn misspelt_sections_and_keys_name_the_closest_known_one() {
        let problems = file_problems(
            "[modle]\nname = \"x\"\n[server]\nbnd = \"127.0.0.1:1\"\nbind = \"127.0.0.1:2\"\n",
        );
        assert_eq!(
            problems,
            vec![
                "my.toml: unknown section [modle]; did you mean [model]?".to_string(),
                "my.toml: unknown key server.bnd; did you mean server.bind?".to_string(),
            ]
        );
    }

    #[test]
    fn known_optional_and_list_keys_pass() {
        let problems = file_problems(
            "[database]\nurl = \"postgres://x@y/z\"\n[agent]\nmax_turns = 3\n[[mcp.servers]]\nname = \"a\"\nurl = \"http://h/mcp\"\nheaders = { \"x-api-key\" = \"k\" }\n",
        );
        assert!(problems.is_empty(), "{problems:?}");
        let problems = file_problems("[[mcp.servers]]\nname = \"a\"\nurll = \"http://h\"\n");
        assert_eq!(
            problems,
            vec!["my.toml: unknown key mcp.servers.urll; did you mean mcp.servers.url?"]
        );
    }

    #[test]
    fn hosted_tools_pass_their_parameters_through() {
        let problems = file_problems(
            "[[hosted_tools]]\ntype = \"file_search\"\nvector_store_ids = [\"vs_1\"]\nmax_num_results = 3\n[[hosted_tools]]\ntype = \"image_generation\"\npartial_images = 1\n[[models]]\nid = \"a\"\nmodel = \"m\"\nhosted_tools = [\"file_search\"]\n",
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            file_problems("[hosted_tools]\ntype = \"web_search\"\n"),
            vec!["my.toml: hosted_tools must be a list of tables ([[hosted_tools]])"]
        );
    }

    #[test]
    fn environment_variables_that_match_nothing_are_named() {
        let known = KnownKeys::from_defaults(DEFAULTS);
        let vars = [
            ("CHATKIT__SERVER__BND".to_string(), "x".to_string()),
            ("CHATKIT__SERVER__BIND".to_string(), "x".to_string()),
            ("CHATKIT__ZZZZZZZZZ__QQQQQQQQ".to_string(), "x".to_string()),
            ("CHATKIT_DEBUG".to_string(), "x".to_string()),
            ("PATH".to_string(), "x".to_string()),
        ];
        let mut problems = Vec::new();
        known.check_env(&vars, "CHATKIT", "__", &mut problems);
        assert_eq!(
            problems,
            vec![
                "environment variable CHATKIT__SERVER__BND matches no setting; did you mean CHATKIT__SERVER__BIND?".to_string(),
                "environment variable CHATKIT__ZZZZZZZZZ__QQQQQQQQ matches no setting".to_string(),
            ]
        );
    }

    #[test]
    fn distance_counts_swaps_once() {
        assert_eq!(edit_distance("modle", "model"), 1);
        assert_eq!(edit_distance("bnd", "bind"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
