//! Loads every file a manifest lists, base first then each incr file, as Redis 7.0's
//! `loadAppendOnlyFiles` does: a listed file that is missing is fatal, empty files are
//! skipped, and a file that ends early is accepted only when it is the last one and
//! `aof-load-truncated` is on (the caller then truncates it at the reported offset).

use std::io::BufReader;
use std::path::Path;

use super::manifest::{AofFileInfo, AofManifest};
use super::reader::{read_aof, AofError, AofFileStatus, AofSink};
use crate::rdb::file_reader::RdbReadOptions;

/// How to load.
#[derive(Clone, Debug)]
pub struct AofLoadOptions {
    /// `aof-load-truncated`.
    pub load_truncated: bool,
    /// `appendfilename`: a base file of exactly this name is a legacy single-file AOF.
    pub aof_filename: String,
    pub rdb: RdbReadOptions,
}

impl Default for AofLoadOptions {
    fn default() -> AofLoadOptions {
        AofLoadOptions {
            load_truncated: true,
            aof_filename: super::manifest::DEFAULT_APPEND_FILENAME.into(),
            rdb: RdbReadOptions::default(),
        }
    }
}

/// What loading found (`AOF_NOT_EXIST`, `AOF_EMPTY`, `AOF_OK` / `AOF_TRUNCATED`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AofLoadStatus {
    /// The manifest lists no base and no incr file.
    NotExist,
    /// Every listed file is empty.
    Empty,
    Loaded,
}

/// The last file ended early and was accepted: truncate it at `offset` (Redis does so
/// before logging "AOF ... loaded anyway because aof-load-truncated is enabled").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Truncation {
    pub file: AofFileInfo,
    pub offset: u64,
    /// The file ended inside `MULTI` ("Revert incomplete MULTI/EXEC transaction ...").
    pub reverted_multi: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AofLoadOutcome {
    pub status: AofLoadStatus,
    pub truncated: Option<Truncation>,
    /// Commands handed to the sink, over all files.
    pub commands: u64,
    /// Sizes of the listed files (`aof_current_size`) and of the base (`aof_base_size`).
    pub total_size: u64,
    pub base_size: u64,
}

/// Loads the files `manifest` lists from `aof_dir` into `sink`.
pub fn load_aof<S: AofSink>(
    aof_dir: &Path,
    manifest: &AofManifest,
    opts: &AofLoadOptions,
    sink: &mut S,
) -> Result<AofLoadOutcome, AofError> {
    let mut out = AofLoadOutcome {
        status: AofLoadStatus::NotExist,
        truncated: None,
        commands: 0,
        total_size: 0,
        base_size: 0,
    };
    if manifest.is_empty() {
        return Ok(out);
    }
    // Every listed file must exist before anything is loaded.
    let mut sizes = Vec::new();
    for info in manifest.load_order() {
        let size = std::fs::metadata(info.path_in(aof_dir))
            .map_err(|err| AofError::Stat {
                file: info.display_name(),
                err,
            })?
            .len();
        sizes.push(size);
        out.total_size += size;
    }
    if out.total_size == 0 {
        out.status = AofLoadStatus::Empty;
        return Ok(out);
    }
    out.status = AofLoadStatus::Loaded;
    out.base_size = manifest.base.as_ref().map_or(0, |_| sizes[0]);
    let count = sizes.len();
    for (i, (info, size)) in manifest.load_order().zip(sizes).enumerate() {
        if size == 0 {
            continue;
        }
        let name = info.display_name();
        let f = std::fs::File::open(info.path_in(aof_dir)).map_err(|err| AofError::Open {
            file: name.clone(),
            err,
        })?;
        let legacy = info.name == opts.aof_filename.as_bytes();
        let summary = read_aof(
            BufReader::with_capacity(64 << 10, f),
            &name,
            legacy,
            &opts.rdb,
            sink,
        )?;
        out.commands += summary.commands;
        if let AofFileStatus::Truncated {
            valid_up_to,
            reverted_multi,
        } = summary.status
        {
            if !opts.load_truncated {
                return Err(AofError::UnexpectedEof { file: name });
            }
            if i + 1 != count {
                return Err(AofError::TruncatedNotLast {
                    file: name,
                    offset: valid_up_to,
                });
            }
            out.truncated = Some(Truncation {
                file: info.clone(),
                offset: valid_up_to,
                reverted_multi,
            });
        }
    }
    Ok(out)
}

/// Cuts a file at `offset`, as Redis does for an accepted truncated tail.
pub fn truncate_file(path: &Path, offset: u64) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)?
        .set_len(offset)
}
