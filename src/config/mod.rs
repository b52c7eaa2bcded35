//! Configuration: redis.conf-style files, `--name value` overrides, CONFIG GET/SET.
//!
//! Every directive we accept is listed once in `DIRECTIVES` with its type, default and whether
//! CONFIG SET may change it at run time. Values are kept in canonical form (memory sizes as
//! bytes, booleans as yes/no), which is what CONFIG GET returns, as Redis does.

use std::collections::BTreeMap;

use crate::util::glob::glob_match;

#[derive(Clone, Copy, Debug)]
enum Kind {
    Bool,
    Int {
        min: i64,
        max: i64,
    },
    Memory {
        min: i64,
    },
    Str,
    Enum(&'static [&'static str]),
    /// A directive whose only accepted values are listed; anything else is refused at start-up
    /// because the feature is not implemented yet.
    Only(&'static [&'static str]),
}

struct Directive {
    name: &'static str,
    kind: Kind,
    default: &'static str,
    mutable: bool,
}

const fn d(name: &'static str, kind: Kind, default: &'static str, mutable: bool) -> Directive {
    Directive {
        name,
        kind,
        default,
        mutable,
    }
}

const I64: Kind = Kind::Int {
    min: i64::MIN,
    max: i64::MAX,
};
const NON_NEG: Kind = Kind::Int {
    min: 0,
    max: i64::MAX,
};

static DIRECTIVES: &[Directive] = &[
    d("port", Kind::Int { min: 0, max: 65535 }, "6379", false),
    d("bind", Kind::Str, "127.0.0.1 -::1", false),
    d("protected-mode", Kind::Bool, "yes", true),
    d("requirepass", Kind::Str, "", true),
    d(
        "maxclients",
        Kind::Int {
            min: 1,
            max: i64::MAX,
        },
        "10000",
        true,
    ),
    d("timeout", Kind::Only(&["0"]), "0", true),
    d("tcp-keepalive", NON_NEG, "300", true),
    d("tcp-backlog", NON_NEG, "511", false),
    d("daemonize", Kind::Only(&["no"]), "no", false),
    d(
        "supervised",
        Kind::Enum(&["upstart", "systemd", "auto", "no"]),
        "no",
        false,
    ),
    d(
        "loglevel",
        Kind::Enum(&["debug", "verbose", "notice", "warning", "nothing"]),
        "notice",
        true,
    ),
    d("logfile", Kind::Str, "", false),
    d("pidfile", Kind::Str, "", false),
    d(
        "databases",
        Kind::Int {
            min: 1,
            max: i64::MAX,
        },
        "16",
        false,
    ),
    d("save", Kind::Only(&[""]), "", true),
    d("appendonly", Kind::Only(&["no"]), "no", true),
    d("dir", Kind::Str, ".", true),
    d("dbfilename", Kind::Str, "dump.rdb", true),
    d(
        "proto-max-bulk-len",
        Kind::Memory { min: 1024 * 1024 },
        "536870912",
        true,
    ),
    d(
        "client-query-buffer-limit",
        Kind::Memory { min: 1024 * 1024 },
        "1073741824",
        true,
    ),
    d("hz", Kind::Int { min: 1, max: 500 }, "10", true),
    d("maxmemory", Kind::Only(&["0"]), "0", true),
    d(
        "maxmemory-policy",
        Kind::Enum(&[
            "volatile-lru",
            "volatile-lfu",
            "volatile-random",
            "volatile-ttl",
            "allkeys-lru",
            "allkeys-lfu",
            "allkeys-random",
            "noeviction",
        ]),
        "noeviction",
        true,
    ),
    d("io-threads", Kind::Int { min: 1, max: 128 }, "1", false),
    d("cluster-enabled", Kind::Only(&["no"]), "no", false),
    d("lazyfree-lazy-user-del", Kind::Bool, "no", true),
    d("lazyfree-lazy-user-flush", Kind::Bool, "no", true),
    d("lazyfree-lazy-expire", Kind::Bool, "no", true),
    d("lazyfree-lazy-eviction", Kind::Bool, "no", true),
    d("lazyfree-lazy-server-del", Kind::Bool, "no", true),
    d("hash-max-listpack-entries", NON_NEG, "128", true),
    d("hash-max-listpack-value", NON_NEG, "64", true),
    d("set-max-intset-entries", NON_NEG, "512", true),
    d("set-max-listpack-entries", NON_NEG, "128", true),
    d("zset-max-listpack-entries", NON_NEG, "128", true),
    d("zset-max-listpack-value", NON_NEG, "64", true),
    d("list-max-listpack-size", I64, "-2", true),
    d("list-compress-depth", NON_NEG, "0", true),
    d(
        "stream-node-max-bytes",
        Kind::Memory { min: 0 },
        "4096",
        true,
    ),
    d("stream-node-max-entries", NON_NEG, "100", true),
    d("slowlog-log-slower-than", I64, "10000", true),
    d("slowlog-max-len", NON_NEG, "128", true),
    d("latency-tracking", Kind::Bool, "yes", true),
    d("activerehashing", Kind::Bool, "yes", true),
    d(
        "enable-debug-command",
        Kind::Enum(&["yes", "no", "local"]),
        "no",
        false,
    ),
    d(
        "enable-protected-configs",
        Kind::Enum(&["yes", "no", "local"]),
        "no",
        false,
    ),
    d("notify-keyspace-events", Kind::Str, "", true),
];

/// Aliases Redis accepts for renamed directives.
static ALIASES: &[(&str, &str)] = &[
    ("hash-max-ziplist-entries", "hash-max-listpack-entries"),
    ("hash-max-ziplist-value", "hash-max-listpack-value"),
    ("zset-max-ziplist-entries", "zset-max-listpack-entries"),
    ("zset-max-ziplist-value", "zset-max-listpack-value"),
    ("list-max-ziplist-size", "list-max-listpack-size"),
];

fn find(name: &str) -> Option<&'static Directive> {
    let lower = name.to_ascii_lowercase();
    let canonical = ALIASES
        .iter()
        .find(|(a, _)| *a == lower)
        .map(|(_, c)| *c)
        .unwrap_or(&lower);
    DIRECTIVES.iter().find(|d| d.name == canonical)
}

/// Parses a Redis memory size (`1gb` = 1024^3, `1g` = 1000^3, plain bytes).
pub fn parse_memory(s: &str) -> Option<i64> {
    let lower = s.to_ascii_lowercase();
    let units: [(&str, i64); 8] = [
        ("kb", 1024),
        ("mb", 1024 * 1024),
        ("gb", 1024 * 1024 * 1024),
        ("k", 1000),
        ("m", 1000 * 1000),
        ("g", 1000 * 1000 * 1000),
        ("b", 1),
        ("", 1),
    ];
    for (suffix, mul) in units {
        if let Some(num) = lower.strip_suffix(suffix) {
            if num.is_empty() || !num.bytes().all(|c| c.is_ascii_digit() || c == b'-') {
                continue;
            }
            return num.parse::<i64>().ok()?.checked_mul(mul);
        }
    }
    None
}

/// Why a value was refused; rendered into start-up errors and CONFIG SET replies.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigError {
    Unknown,
    Invalid(String),
    Immutable,
    Unsupported(String),
}

#[derive(Clone, Debug)]
pub struct Config {
    values: BTreeMap<&'static str, String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            values: DIRECTIVES
                .iter()
                .map(|d| (d.name, d.default.to_string()))
                .collect(),
        }
    }
}

impl Config {
    pub fn get(&self, name: &str) -> &str {
        self.values.get(name).map(String::as_str).unwrap_or("")
    }

    pub fn get_i64(&self, name: &str) -> i64 {
        self.get(name).parse().unwrap_or(0)
    }

    pub fn get_bool(&self, name: &str) -> bool {
        self.get(name) == "yes"
    }

    /// Sets a directive from its arguments (as on a config line after the name).
    /// `startup` allows immutable directives.
    pub fn set(&mut self, name: &str, args: &[String], startup: bool) -> Result<(), ConfigError> {
        let dir = find(name).ok_or(ConfigError::Unknown)?;
        if !startup && !dir.mutable {
            return Err(ConfigError::Immutable);
        }
        let joined = args.join(" ");
        let single = || -> Result<&String, ConfigError> {
            match args {
                [one] => Ok(one),
                _ => Err(ConfigError::Invalid("wrong number of arguments".into())),
            }
        };
        let value = match dir.kind {
            Kind::Bool => match single()?.to_ascii_lowercase().as_str() {
                "yes" => "yes".to_string(),
                "no" => "no".to_string(),
                _ => {
                    return Err(ConfigError::Invalid(
                        "argument must be 'yes' or 'no'".into(),
                    ))
                }
            },
            Kind::Int { min, max } => {
                let v: i64 = single()?.parse().map_err(|_| {
                    ConfigError::Invalid("argument couldn't be parsed into an integer".into())
                })?;
                if v < min || v > max {
                    return Err(ConfigError::Invalid(format!(
                        "argument must be between {min} and {max} inclusive"
                    )));
                }
                v.to_string()
            }
            Kind::Memory { min } => {
                let v = parse_memory(single()?).ok_or_else(|| {
                    ConfigError::Invalid("argument must be a memory value".into())
                })?;
                if v < min {
                    return Err(ConfigError::Invalid(format!(
                        "argument must be between {min} and {} inclusive",
                        i64::MAX
                    )));
                }
                v.to_string()
            }
            Kind::Str => {
                if dir.name == "bind" {
                    joined
                } else {
                    single()?.clone()
                }
            }
            Kind::Enum(options) => {
                let v = single()?.to_ascii_lowercase();
                if !options.contains(&v.as_str()) {
                    return Err(ConfigError::Invalid(
                        "argument(s) must be one of the following: ".to_string()
                            + &options.join(", "),
                    ));
                }
                v
            }
            Kind::Only(options) => {
                let v = if args.is_empty() {
                    String::new()
                } else {
                    joined.to_ascii_lowercase()
                };
                // `save ""` arrives as one empty argument.
                let v = if v == "\"\"" { String::new() } else { v };
                if !options.contains(&v.as_str()) {
                    return Err(ConfigError::Unsupported(format!(
                        "'{} {}' is not supported yet by redcell (accepted: {})",
                        dir.name,
                        joined,
                        options
                            .iter()
                            .map(|o| if o.is_empty() { "\"\"" } else { o })
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
                v
            }
        };
        self.values.insert(dir.name, value);
        Ok(())
    }

    /// Applies a redis.conf text. Errors name the line like redis-server does.
    pub fn load_text(&mut self, text: &str) -> Result<(), String> {
        for (i, line) in text.lines().enumerate() {
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let fatal = |why: &str| {
                format!(
                    "\n*** FATAL CONFIG FILE ERROR (redcell {}) ***\nReading the configuration file, at line {}\n>>> '{}'\n{}",
                    crate::REDCELL_VERSION,
                    i + 1,
                    trimmed,
                    why
                )
            };
            let words = crate::resp::decode::split_args(trimmed.as_bytes())
                .map_err(|_| fatal("Unbalanced quotes in configuration line"))?;
            let words: Vec<String> = words
                .iter()
                .map(|w| String::from_utf8_lossy(w).into_owned())
                .collect();
            let Some((name, args)) = words.split_first() else {
                continue;
            };
            if name.eq_ignore_ascii_case("include") {
                return Err(fatal("'include' is not supported yet"));
            }
            match self.set(name, args, true) {
                Ok(()) => {}
                Err(ConfigError::Unknown) => {
                    return Err(fatal("Bad directive or wrong number of arguments"))
                }
                Err(ConfigError::Invalid(why)) => return Err(fatal(&why)),
                Err(ConfigError::Unsupported(why)) => return Err(fatal(&why)),
                Err(ConfigError::Immutable) => unreachable!("start-up may set any directive"),
            }
        }
        Ok(())
    }

    /// `(name, value)` pairs whose name matches `pattern` (CONFIG GET).
    pub fn matching(&self, pattern: &[u8]) -> Vec<(&'static str, String)> {
        let mut out: Vec<(&'static str, String)> = DIRECTIVES
            .iter()
            .filter(|d| glob_match(&pattern.to_ascii_lowercase(), d.name.as_bytes()))
            .map(|d| (d.name, self.get(d.name).to_string()))
            .collect();
        for (alias, canonical) in ALIASES {
            if glob_match(&pattern.to_ascii_lowercase(), alias.as_bytes())
                && !out.iter().any(|(n, _)| n == alias)
            {
                out.push((alias, self.get(canonical).to_string()));
            }
        }
        out
    }

    /// The bind addresses (a leading `-` marks an address that may be unavailable).
    pub fn bind_addrs(&self) -> Vec<(String, bool)> {
        self.get("bind")
            .split_whitespace()
            .map(|a| match a.strip_prefix('-') {
                Some(rest) => (rest.to_string(), true),
                None => (a.to_string(), false),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_units() {
        assert_eq!(parse_memory("1gb"), Some(1 << 30));
        assert_eq!(parse_memory("1g"), Some(1_000_000_000));
        assert_eq!(parse_memory("512mb"), Some(512 << 20));
        assert_eq!(parse_memory("100"), Some(100));
        assert_eq!(parse_memory("abc"), None);
    }

    #[test]
    fn file_errors_name_the_line() {
        let mut c = Config::default();
        let err = c.load_text("port 7000\nnosuch thing\n").unwrap_err();
        assert!(err.contains("at line 2"), "{err}");
        assert!(err.contains("Bad directive"), "{err}");
        assert_eq!(c.get("port"), "7000");
        assert!(c
            .load_text("save 900 1\n")
            .unwrap_err()
            .contains("not supported yet"));
        assert!(c
            .load_text("appendonly yes\n")
            .unwrap_err()
            .contains("not supported yet"));
        c.load_text("save \"\"\nappendonly no\nproto-max-bulk-len 1mb\n")
            .unwrap();
        assert_eq!(c.get("proto-max-bulk-len"), "1048576");
    }
}
