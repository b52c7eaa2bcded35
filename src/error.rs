//! The catalogue of error replies: every error a command can answer, rendered exactly as Redis 7 words it.

use std::borrow::Cow;

/// An error reply. `render` gives the exact line Redis sends, without `-` and CRLF.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    Syntax,
    NotInteger,
    NotFloat,
    WrongType,
    Overflow,
    NoSuchKey,
    OutOfRangeOffset,
    BitNotInteger,
    BitOffset,
    ExpireTime(&'static str),
    IncrNanOrInf,
    DbIndexOutOfRange,
    NoAuth,
    /// A command that may grow memory while used memory is over `maxmemory`.
    Oom,
    WrongPass,
    AuthNotConfigured,
    /// A SCAN-family cursor that is not an unsigned 64-bit number.
    InvalidCursor,
    /// A string that is not an HLL where one is required.
    NotHll,
    /// An HLL whose sparse stream does not decode to exactly 16384 registers.
    CorruptHll,
    /// `ERR value is out of range, value must between <min> and <max>` (Redis's wording).
    OutOfRange {
        min: i64,
        max: i64,
    },
    /// `ERR wrong number of arguments for '<name>' command`
    WrongArity(Cow<'static, str>),
    /// Already fully formatted unknown-command text.
    UnknownCommand(String),
    /// `ERR unknown subcommand '<sub>'. Try <CMD> HELP.`
    UnknownSubcommand {
        sub: String,
        cmd: &'static str,
    },
    /// `ERR unknown subcommand or wrong number of arguments for '<sub>'. Try <CMD> HELP.`
    SubcommandSyntax {
        sub: String,
        cmd: &'static str,
    },
    /// `ERR MULTI calls can not be nested`
    MultiNested,
    ExecWithoutMulti,
    DiscardWithoutMulti,
    WatchInsideMulti,
    /// EXEC after an error while queueing.
    ExecAbort,
    /// A command refused inside MULTI (flag `no-multi`).
    NotInMulti,
    /// `ERR source and destination objects are the same` (MOVE, COPY, SMOVE ...).
    SameObject,
    /// Start-up loading runs (`-LOADING`).
    Loading,
    /// A background save failed under `stop-writes-on-bgsave-error` (`-MISCONF`).
    BgsaveFailed,
    /// `min-replicas-to-write` is not met.
    NoReplicas,
    /// The last AOF write failed with this errno (`-MISCONF`).
    AofWriteFailed(i32),
    /// A write sent to a replica with `replica-read-only yes`.
    ReadOnlyReplica,
    /// A replica whose master link is down, with `replica-serve-stale-data no`.
    MasterDown,
    /// A save failed: Redis answers a bare `-ERR` and logs why.
    SaveFailed,
    /// The user may not run the command (its full name).
    NoPermCommand(String),
    NoPermKey,
    NoPermChannel,
    /// A queued command refused at EXEC time, with the reason.
    NoPermExec(&'static str),
    /// Any other `ERR <text>` message.
    Err(Cow<'static, str>),
    /// A message that carries its own code (`NOPROTO ...`, `BUSYKEY ...`).
    Coded(Cow<'static, str>),
    /// CLIENT TRACKING / CACHING refusals.
    Tracking(TrackingError),
    /// A script with flags refused as it starts (`scriptPrepareForRun`).
    Script(ScriptRefusal),
}

/// Why a script with flags may not start (Redis 7.0's `scriptPrepareForRun` wording, which
/// differs from `processCommand`'s for the same state: `MasterDown`, `BgsaveFailed` ...).
#[derive(Debug, Clone, PartialEq)]
pub enum ScriptRefusal {
    /// The master link is down and the script lacks `allow-stale`.
    MasterDown,
    /// A read-only replica and a script without `no-writes`.
    ReadOnlyReplica,
    /// A failed background save and a script without `no-writes`.
    BgsaveFailed,
    /// A failed AOF write (this errno) and a script without `no-writes`.
    AofWriteFailed(i32),
    /// Memory over the limit and a script without `allow-oom` or `no-writes`.
    Oom,
}

/// Why CLIENT TRACKING or CLIENT CACHING refused (Redis 7.0's `clientCommand` wording).
#[derive(Debug, Clone, PartialEq)]
pub enum TrackingError {
    RedirectTwice,
    NoSuchRedirect,
    PrefixWithoutBcast,
    SwitchBcast,
    BcastWithOptInOut,
    OptInAndOptOut,
    SwitchOptInOut,
    /// A new prefix overlaps one the client has.
    PrefixOverlapsExisting {
        prefix: String,
        existing: String,
    },
    /// Two prefixes given together overlap.
    PrefixOverlapsProvided {
        prefix: String,
        other: String,
    },
    CachingWithoutMode,
    CachingYesWithoutOptIn,
    CachingNoWithoutOptOut,
}

impl TrackingError {
    fn render(&self) -> Cow<'static, str> {
        use TrackingError::*;
        match self {
            RedirectTwice => "ERR A client can only redirect to a single other client".into(),
            NoSuchRedirect => "ERR The client ID you want redirect to does not exist".into(),
            PrefixWithoutBcast => "ERR PREFIX option requires BCAST mode to be enabled".into(),
            SwitchBcast => "ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode.".into(),
            BcastWithOptInOut => "ERR OPTIN and OPTOUT are not compatible with BCAST".into(),
            OptInAndOptOut => "ERR You can't specify both OPTIN mode and OPTOUT mode".into(),
            SwitchOptInOut => "ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode.".into(),
            PrefixOverlapsExisting { prefix, existing } => format!(
                "ERR Prefix '{}' overlaps with an existing prefix '{}'. Prefixes for a single client must not overlap.",
                sanitize(prefix),
                sanitize(existing)
            )
            .into(),
            PrefixOverlapsProvided { prefix, other } => format!(
                "ERR Prefix '{}' overlaps with another provided prefix '{}'. Prefixes for a single client must not overlap.",
                sanitize(prefix),
                sanitize(other)
            )
            .into(),
            CachingWithoutMode => "ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled".into(),
            CachingYesWithoutOptIn => "ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.".into(),
            CachingNoWithoutOptOut => "ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.".into(),
        }
    }
}

impl ScriptRefusal {
    fn render(&self) -> Cow<'static, str> {
        const BLOCKED: &str = "but it's currently unable to persist to disk. Writable scripts \
                               are blocked. Use 'no-writes' flag for read only scripts.";
        match self {
            ScriptRefusal::MasterDown => "MASTERDOWN Link with MASTER is down, replica-serve-stale-data is set to 'no' and 'allow-stale' flag is not set on the script.".into(),
            ScriptRefusal::ReadOnlyReplica => {
                "READONLY Can not run script with write flag on readonly replica".into()
            }
            ScriptRefusal::BgsaveFailed => {
                format!("MISCONF Redis is configured to save RDB snapshots, {BLOCKED}").into()
            }
            ScriptRefusal::AofWriteFailed(errno) => format!(
                "MISCONF Redis is configured to persist data to AOF, {BLOCKED} AOF error: {}",
                crate::util::strerror(*errno)
            )
            .into(),
            ScriptRefusal::Oom => "OOM allow-oom flag is not set on the script, can not run it when used memory > 'maxmemory'".into(),
        }
    }
}

impl Error {
    pub fn msg(text: impl Into<Cow<'static, str>>) -> Error {
        Error::Err(text.into())
    }

    /// The error line, e.g. `ERR syntax error`.
    pub fn render(&self) -> Cow<'static, str> {
        use Error::*;
        match self {
            Syntax => "ERR syntax error".into(),
            NotInteger => "ERR value is not an integer or out of range".into(),
            NotFloat => "ERR value is not a valid float".into(),
            WrongType => "WRONGTYPE Operation against a key holding the wrong kind of value".into(),
            Overflow => "ERR increment or decrement would overflow".into(),
            NoSuchKey => "ERR no such key".into(),
            OutOfRangeOffset => "ERR offset is out of range".into(),
            BitNotInteger => "ERR bit is not an integer or out of range".into(),
            BitOffset => "ERR bit offset is not an integer or out of range".into(),
            ExpireTime(cmd) => format!("ERR invalid expire time in '{cmd}' command").into(),
            IncrNanOrInf => "ERR increment would produce NaN or Infinity".into(),
            DbIndexOutOfRange => "ERR DB index is out of range".into(),
            MultiNested => "ERR MULTI calls can not be nested".into(),
            ExecWithoutMulti => "ERR EXEC without MULTI".into(),
            DiscardWithoutMulti => "ERR DISCARD without MULTI".into(),
            WatchInsideMulti => "ERR WATCH inside MULTI is not allowed".into(),
            ExecAbort => "EXECABORT Transaction discarded because of previous errors.".into(),
            NotInMulti => "ERR Command not allowed inside a transaction".into(),
            SameObject => "ERR source and destination objects are the same".into(),
            NoAuth => "NOAUTH Authentication required.".into(),
            Oom => "OOM command not allowed when used memory > 'maxmemory'.".into(),
            WrongPass => "WRONGPASS invalid username-password pair or user is disabled.".into(),
            AuthNotConfigured => "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?".into(),
            InvalidCursor => "ERR invalid cursor".into(),
            NotHll => "WRONGTYPE Key is not a valid HyperLogLog string value.".into(),
            CorruptHll => "INVALIDOBJ Corrupted HLL object detected".into(),
            OutOfRange { min, max } => format!("ERR value is out of range, value must between {min} and {max}").into(),
            WrongArity(name) => format!("ERR wrong number of arguments for '{name}' command").into(),
            UnknownCommand(text) => Cow::Owned(text.clone()),
            UnknownSubcommand { sub, cmd } => format!("ERR unknown subcommand '{}'. Try {cmd} HELP.", sanitize(sub)).into(),
            SubcommandSyntax { sub, cmd } => format!(
                "ERR unknown subcommand or wrong number of arguments for '{}'. Try {cmd} HELP.",
                sanitize(sub)
            )
            .into(),
            Loading => "LOADING Redis is loading the dataset in memory".into(),
            NoReplicas => "NOREPLICAS Not enough good replicas to write.".into(),
            AofWriteFailed(errno) => format!(
                "MISCONF Errors writing to the AOF file: {}",
                crate::util::strerror(*errno)
            )
            .into(),
            BgsaveFailed => "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Commands that may modify the data set are disabled, because this instance is configured to report errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB error.".into(),
            SaveFailed => "ERR".into(),
            ReadOnlyReplica => "READONLY You can't write against a read only replica.".into(),
            MasterDown => "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.".into(),
            NoPermCommand(name) => format!("NOPERM this user has no permissions to run the '{name}' command").into(),
            NoPermKey => "NOPERM this user has no permissions to access one of the keys used as arguments".into(),
            NoPermChannel => "NOPERM this user has no permissions to access one of the channels used as arguments".into(),
            NoPermExec(why) => format!("NOPERM ACLs rules changed between the moment the transaction was accumulated and the EXEC call. This command is no longer allowed for the following reason: {why}").into(),
            Err(text) => format!("ERR {}", sanitize(text)).into(),
            Coded(text) => Cow::Owned(sanitize(text)),
            Tracking(e) => e.render(),
            Script(r) => r.render(),
        }
    }

    /// `ERR unknown command '<name>', with args beginning with: '<a1>' ...`, truncated as Redis does.
    pub fn unknown_command(name: &[u8], args: &[&[u8]]) -> Error {
        let mut text = String::from("ERR unknown command '");
        text.push_str(&sanitize(&truncate_lossy(name, 128)));
        text.push_str("', with args beginning with: ");
        let mut budget: isize = 128;
        for arg in args {
            if budget <= 0 {
                break;
            }
            let shown = truncate_lossy(arg, budget as usize);
            budget -= shown.len() as isize;
            text.push('\'');
            text.push_str(&sanitize(&shown));
            text.push_str("' ");
        }
        Error::UnknownCommand(text)
    }

    pub fn unknown_subcommand(sub: &[u8], cmd: &'static str) -> Error {
        Error::UnknownSubcommand {
            sub: truncate_lossy(sub, 128),
            cmd,
        }
    }

    pub fn subcommand_syntax(sub: &[u8], cmd: &'static str) -> Error {
        Error::SubcommandSyntax {
            sub: truncate_lossy(sub, 128),
            cmd,
        }
    }
}

fn truncate_lossy(bytes: &[u8], max: usize) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(max)]).into_owned()
}

/// Error lines never contain CR or LF: Redis replaces them with spaces.
fn sanitize(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}

pub type CmdResult = Result<(), Error>;

#[cfg(test)]
mod tests {
    use super::Error;

    #[test]
    fn catalogue_renders_redis_text() {
        let cases: Vec<(Error, &str)> = vec![
            (Error::Syntax, "ERR syntax error"),
            (Error::NotInteger, "ERR value is not an integer or out of range"),
            (Error::NotFloat, "ERR value is not a valid float"),
            (Error::WrongType, "WRONGTYPE Operation against a key holding the wrong kind of value"),
            (Error::Overflow, "ERR increment or decrement would overflow"),
            (Error::NoSuchKey, "ERR no such key"),
            (Error::ExpireTime("set"), "ERR invalid expire time in 'set' command"),
            (Error::DbIndexOutOfRange, "ERR DB index is out of range"),
            (Error::Loading, "LOADING Redis is loading the dataset in memory"),
            (Error::SaveFailed, "ERR"),
            (Error::ReadOnlyReplica, "READONLY You can't write against a read only replica."),
            (
                Error::MasterDown,
                "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
            ),
            (Error::MultiNested, "ERR MULTI calls can not be nested"),
            (Error::ExecWithoutMulti, "ERR EXEC without MULTI"),
            (Error::DiscardWithoutMulti, "ERR DISCARD without MULTI"),
            (Error::WatchInsideMulti, "ERR WATCH inside MULTI is not allowed"),
            (Error::ExecAbort, "EXECABORT Transaction discarded because of previous errors."),
            (Error::NotInMulti, "ERR Command not allowed inside a transaction"),
            (Error::SameObject, "ERR source and destination objects are the same"),
            (Error::InvalidCursor, "ERR invalid cursor"),
            (Error::NotHll, "WRONGTYPE Key is not a valid HyperLogLog string value."),
            (Error::CorruptHll, "INVALIDOBJ Corrupted HLL object detected"),
            (
                Error::OutOfRange { min: i32::MIN as i64, max: i32::MAX as i64 },
                "ERR value is out of range, value must between -2147483648 and 2147483647",
            ),
            (Error::NoAuth, "NOAUTH Authentication required."),
            (Error::Oom, "OOM command not allowed when used memory > 'maxmemory'."),
            (Error::NoPermCommand("config|set".into()), "NOPERM this user has no permissions to run the 'config|set' command"),
            (Error::NoPermKey, "NOPERM this user has no permissions to access one of the keys used as arguments"),
            (Error::NoPermChannel, "NOPERM this user has no permissions to access one of the channels used as arguments"),
            (
                Error::NoPermExec("no permission to touch the specified keys"),
                "NOPERM ACLs rules changed between the moment the transaction was accumulated and the EXEC call. This command is no longer allowed for the following reason: no permission to touch the specified keys",
            ),
            (Error::WrongPass, "WRONGPASS invalid username-password pair or user is disabled."),
            (Error::WrongArity("get".into()), "ERR wrong number of arguments for 'get' command"),
            (Error::unknown_subcommand(b"foo", "CLIENT"), "ERR unknown subcommand 'foo'. Try CLIENT HELP."),
            (
                Error::subcommand_syntax(b"getname", "CLIENT"),
                "ERR unknown subcommand or wrong number of arguments for 'getname'. Try CLIENT HELP.",
            ),
            (Error::msg("a\r\nb"), "ERR a  b"),
            (
                Error::unknown_command(b"NOSUCH", &[b"a", b"b"]),
                "ERR unknown command 'NOSUCH', with args beginning with: 'a' 'b' ",
            ),
            (Error::unknown_command(b"x", &[]), "ERR unknown command 'x', with args beginning with: "),
        ];
        for (err, text) in cases {
            assert_eq!(err.render(), text);
        }
    }
}
