//! Process-wide OS settings Redis makes from its configuration: the log file, transparent huge
//! pages, the OOM killer's score.

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::sync::Mutex;

/// `logfile`: the process's stdout and stderr go to `path`, opened for appending (as Redis
/// opens it for each line, so `logrotate`'s copytruncate works). Redis refuses to start when
/// the file cannot be opened, with this wording.
pub fn redirect_log(path: &str) -> Result<(), String> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| {
            format!(
                "Can't open the log file: {}",
                crate::util::os_error_text(&e)
            )
        })?;
    for target in [libc::STDOUT_FILENO, libc::STDERR_FILENO] {
        // SAFETY: both descriptors are valid; dup2 replaces `target` atomically.
        if unsafe { libc::dup2(file.as_raw_fd(), target) } < 0 {
            return Err(format!(
                "Can't open the log file: {}",
                crate::util::os_error_text(&io::Error::last_os_error())
            ));
        }
    }
    Ok(())
}

/// `disable-thp yes`: when the system enables transparent huge pages for every process
/// (`[always]`), turn them off for this one, as Redis's `linuxMemoryWarnings` does (huge
/// pages make a small write copy or zero 2 MB). Under `madvise` or `never` there is nothing
/// to do. Returns whether it was turned off.
pub fn disable_thp() -> bool {
    let always = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
        .is_ok_and(|s| s.contains("[always]"));
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and touches only this process's flags.
    always && unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) } == 0
}

/// `oom-score-adj`'s modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OomMode {
    No,
    /// The configured value is added to the score the process started with.
    Relative,
    Absolute,
}

impl OomMode {
    /// From the directive's canonical value (`yes` is `relative`).
    pub fn parse(value: &str) -> OomMode {
        match value {
            "yes" | "relative" => OomMode::Relative,
            "absolute" => OomMode::Absolute,
            _ => OomMode::No,
        }
    }
}

/// The score the process had before we first changed it (Redis's `oom_score_adj_base`),
/// kept so `oom-score-adj no` can put it back.
static OOM_BASE: Mutex<Option<i64>> = Mutex::new(None);

const OOM_FILE: &str = "/proc/self/oom_score_adj";

/// Redis's `setOOMScoreAdj`: writes `/proc/self/oom_score_adj` for this process's role
/// (`value` is the master's or the replica's entry of `oom-score-adj-values`), clamped to
/// -1000..=1000; with `No`, restores the original score if we changed it. The error is
/// logged by the caller.
pub fn set_oom_score_adj(mode: OomMode, value: i64) -> io::Result<()> {
    let mut base = OOM_BASE.lock().unwrap_or_else(|e| e.into_inner());
    let score = match (mode, *base) {
        (OomMode::No, None) => return Ok(()),
        (OomMode::No, Some(original)) => {
            *base = None;
            original
        }
        (mode, known) => {
            let original = match known {
                Some(original) => original,
                None => {
                    let mut text = String::new();
                    std::fs::File::open(OOM_FILE)?.read_to_string(&mut text)?;
                    let original = text.trim().parse().unwrap_or(0);
                    *base = Some(original);
                    original
                }
            };
            let score = if mode == OomMode::Relative {
                value + original
            } else {
                value
            };
            score.clamp(-1000, 1000)
        }
    };
    std::fs::OpenOptions::new()
        .write(true)
        .open(OOM_FILE)?
        .write_all(format!("{score}\n").as_bytes())
}
