//! Redis 7.0's multi-part append-only file, on disk: the manifest and file names
//! (`manifest`), reading one file's RDB part and commands (`reader`), loading every file a
//! manifest lists with `aof-load-truncated` (`loader`), and the bytes appended to an incr
//! file (`writer`). Executing the commands and scheduling rewrites belong to the server.

pub mod loader;
pub mod manifest;
pub mod reader;
pub mod rewrite;
pub mod writer;

pub use loader::{
    load_aof, truncate_file, AofLoadOptions, AofLoadOutcome, AofLoadStatus, Truncation,
};
pub use manifest::{AofFileInfo, AofFileType, AofManifest, ManifestError};
pub use reader::{read_aof, AofError, AofFileStatus, AofFileSummary, AofSink};
pub use writer::{encode_command, IncrBuffer};
