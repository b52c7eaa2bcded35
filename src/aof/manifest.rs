//! The 7.0 multi-part AOF manifest (`appendonly.aof.manifest`): parsed and written exactly as
//! `aof.c` does (`aofLoadManifestFromFile`, `getAofManifestAsString`), the bookkeeping a
//! rewrite does on it (new base, new incr, incr files turned history), and the file names.

use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::util::repr::{needs_repr, write_repr};
use crate::util::split::split_args;

/// `appendfilename` and `appenddirname` defaults.
pub const DEFAULT_APPEND_FILENAME: &str = "appendonly.aof";
pub const DEFAULT_APPEND_DIRNAME: &str = "appendonlydir";

/// `MANIFEST_MAX_LINE`: Redis reads the manifest with `fgets` into a buffer this long (+1).
const MAX_LINE: usize = 1024;

/// What an AOF file is to the manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AofFileType {
    /// `b`: the snapshot the incr files apply to (at most one).
    Base,
    /// `h`: replaced by a rewrite, waiting to be deleted.
    History,
    /// `i`: commands appended after the base; only the last is written to.
    Incr,
}

impl AofFileType {
    /// The manifest's letter for it.
    pub fn letter(self) -> u8 {
        match self {
            AofFileType::Base => b'b',
            AofFileType::History => b'h',
            AofFileType::Incr => b'i',
        }
    }
}

/// One manifest line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AofFileInfo {
    /// A plain file name (bytes: a manifest may hold any, quoted).
    pub name: Vec<u8>,
    pub seq: i64,
    pub kind: AofFileType,
}

impl AofFileInfo {
    /// The name for log lines.
    pub fn display_name(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }

    /// The file's path inside the AOF directory `dir`.
    pub fn path_in(&self, dir: &Path) -> PathBuf {
        use std::os::unix::ffi::OsStrExt;
        dir.join(std::ffi::OsStr::from_bytes(&self.name))
    }
}

/// The files of one AOF, as the manifest lists them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AofManifest {
    pub base: Option<AofFileInfo>,
    /// Oldest last, as Redis adds them at the head.
    pub history: Vec<AofFileInfo>,
    /// In load order; sequence numbers strictly increase.
    pub incr: Vec<AofFileInfo>,
    /// Last sequence numbers handed out; base and incr count separately.
    pub curr_base_seq: i64,
    pub curr_incr_seq: i64,
}

/// A manifest Redis refuses at start-up (it logs the block `Display` gives and exits 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestError {
    /// Redis's text: "Invalid AOF manifest file format", "Unknown AOF file type", ...
    pub reason: &'static str,
    /// The 1-based line number and the trimmed line, when a line was being parsed.
    pub line: Option<(usize, String)>,
}

impl fmt::Display for ManifestError {
    /// The lines Redis logs (`*** FATAL AOF MANIFEST FILE ERROR ***`, the line, the reason).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "*** FATAL AOF MANIFEST FILE ERROR ***")?;
        if let Some((n, text)) = &self.line {
            writeln!(f, "Reading the manifest file, at line {n}")?;
            writeln!(f, ">>> '{text}'")?;
        }
        f.write_str(self.reason)
    }
}

impl std::error::Error for ManifestError {}

impl AofManifest {
    /// Parses manifest text as Redis 7.0 does. Lines are read the way `fgets` reads them
    /// (at most 1024 bytes at a time), so a longer line, or a last line without `\n`, is
    /// refused as "too long" (a `#` comment is skipped before that check, so a final
    /// comment without `\n` passes). Keys are case-insensitive, extra key/value pairs are
    /// ignored, names may be quoted as in redis.conf.
    pub fn parse(text: &[u8]) -> Result<AofManifest, ManifestError> {
        let mut m = AofManifest::default();
        let mut max_seq = 0i64;
        let mut linenum = 0usize;
        let mut rest = text;
        let fail = |reason, line: Option<(usize, &[u8])>| ManifestError {
            reason,
            line: line.map(|(n, l)| (n, String::from_utf8_lossy(l).into_owned())),
        };
        loop {
            if rest.is_empty() {
                if linenum == 0 {
                    return Err(fail("Found an empty AOF manifest", None));
                }
                return Ok(m);
            }
            // One fgets: up to and including '\n', at most MAX_LINE bytes.
            let take = match rest[..rest.len().min(MAX_LINE)]
                .iter()
                .position(|&b| b == b'\n')
            {
                Some(i) => i + 1,
                None => rest.len().min(MAX_LINE),
            };
            let chunk = &rest[..take];
            rest = &rest[take..];
            linenum += 1;
            // Redis handles the buffer as a C string: it ends at the first NUL.
            let c_str = &chunk[..chunk.iter().position(|&b| b == 0).unwrap_or(chunk.len())];
            if c_str.first() == Some(&b'#') {
                continue;
            }
            if !c_str.contains(&b'\n') {
                return Err(fail("The AOF manifest file contains too long line", None));
            }
            let line = trim(c_str);
            let at = Some((linenum, line));
            if line.is_empty() {
                return Err(fail("Invalid AOF manifest file format", at));
            }
            let argv = match split_args(line) {
                Ok(a) if a.len() >= 6 && a.len() % 2 == 0 => a,
                _ => return Err(fail("Invalid AOF manifest file format", at)),
            };
            let (mut name, mut seq, mut kind) = (None, 0i64, 0u8);
            for pair in argv.chunks_exact(2) {
                let value = &pair[1];
                if pair[0].eq_ignore_ascii_case(b"file") {
                    // sdsnew: the value as a C string.
                    let n = &value[..value.iter().position(|&b| b == 0).unwrap_or(value.len())];
                    if n.contains(&b'/') || n.contains(&b'\\') {
                        return Err(fail("File can't be a path, just a filename", at));
                    }
                    name = Some(n.to_vec());
                } else if pair[0].eq_ignore_ascii_case(b"seq") {
                    seq = c_atoll(value);
                } else if pair[0].eq_ignore_ascii_case(b"type") {
                    kind = value.first().copied().unwrap_or(0);
                }
            }
            let name = match name {
                Some(n) if seq != 0 && kind != 0 => n,
                _ => return Err(fail("Invalid AOF manifest file format", at)),
            };
            let kind = match kind {
                b'b' => AofFileType::Base,
                b'h' => AofFileType::History,
                b'i' => AofFileType::Incr,
                _ => return Err(fail("Unknown AOF file type", at)),
            };
            let info = AofFileInfo { name, seq, kind };
            match kind {
                AofFileType::Base => {
                    if m.base.is_some() {
                        return Err(fail("Found duplicate base file information", at));
                    }
                    m.curr_base_seq = seq;
                    m.base = Some(info);
                }
                AofFileType::History => m.history.push(info),
                AofFileType::Incr => {
                    if seq <= max_seq {
                        return Err(fail("Found a non-monotonic sequence number", at));
                    }
                    m.curr_incr_seq = seq;
                    max_seq = seq;
                    m.incr.push(info);
                }
            }
        }
    }

    /// The manifest text (`getAofManifestAsString`): base, then history, then incr files,
    /// one `file <name> seq <n> type <t>` line each, the name quoted only when it needs it.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for info in self.base.iter().chain(&self.history).chain(&self.incr) {
            out.extend_from_slice(b"file ");
            if needs_repr(&info.name) {
                write_repr(&mut out, &info.name);
            } else {
                out.extend_from_slice(&info.name);
            }
            out.extend_from_slice(format!(" seq {} type ", info.seq).as_bytes());
            out.push(info.kind.letter());
            out.push(b'\n');
        }
        out
    }

    /// No base and no incr file: nothing to load (history files do not count).
    pub fn is_empty(&self) -> bool {
        self.base.is_none() && self.incr.is_empty()
    }

    /// The files to load, in order: the base, then every incr file.
    pub fn load_order(&self) -> impl Iterator<Item = &AofFileInfo> {
        self.base.iter().chain(&self.incr)
    }

    /// A rewrite's new base (`getNewBaseFileNameAndMarkPreAsHistory`): the current base
    /// becomes the newest history file; returns the new base's name.
    pub fn new_base_file(&mut self, aof_filename: &str, rdb_preamble: bool) -> Vec<u8> {
        if let Some(mut old) = self.base.take() {
            old.kind = AofFileType::History;
            self.history.insert(0, old);
        }
        self.curr_base_seq += 1;
        let name = base_file_name(aof_filename, self.curr_base_seq, rdb_preamble).into_bytes();
        self.base = Some(AofFileInfo {
            name: name.clone(),
            seq: self.curr_base_seq,
            kind: AofFileType::Base,
        });
        name
    }

    /// A new incr file at the end of the list (`getNewIncrAofName`); returns its name.
    pub fn new_incr_file(&mut self, aof_filename: &str) -> Vec<u8> {
        self.curr_incr_seq += 1;
        let name = incr_file_name(aof_filename, self.curr_incr_seq).into_bytes();
        self.incr.push(AofFileInfo {
            name: name.clone(),
            seq: self.curr_incr_seq,
            kind: AofFileType::Incr,
        });
        name
    }

    /// The incr file to append to: the last one, or a new one (`getLastIncrAofName`).
    pub fn last_incr_file(&mut self, aof_filename: &str) -> Vec<u8> {
        match self.incr.last() {
            Some(info) => info.name.clone(),
            None => self.new_incr_file(aof_filename),
        }
    }

    /// After a successful rewrite (`markRewrittenIncrAofAsHistory`): every incr file becomes
    /// history, except the last one when the AOF is open (it is the one being written).
    pub fn mark_rewritten_incr_as_history(&mut self, aof_open: bool) {
        let keep = usize::from(aof_open).min(self.incr.len());
        let moved: Vec<AofFileInfo> = self.incr.drain(..self.incr.len() - keep).collect();
        // Redis walks them newest first and adds each at the head: they end up in order.
        for mut info in moved.into_iter().rev() {
            info.kind = AofFileType::History;
            self.history.insert(0, info);
        }
    }

    /// Takes the history files out (their files are then deleted, `aofDelHistoryFiles`).
    pub fn take_history(&mut self) -> Vec<AofFileInfo> {
        std::mem::take(&mut self.history)
    }
}

/// `<appendfilename>.<seq>.base.rdb` (RDB preamble) or `.base.aof`.
pub fn base_file_name(aof_filename: &str, seq: i64, rdb_preamble: bool) -> String {
    let format = if rdb_preamble { "rdb" } else { "aof" };
    format!("{aof_filename}.{seq}.base.{format}")
}

/// `<appendfilename>.<seq>.incr.aof`.
pub fn incr_file_name(aof_filename: &str, seq: i64) -> String {
    format!("{aof_filename}.{seq}.incr.aof")
}

/// `<appendfilename>.manifest`.
pub fn manifest_file_name(aof_filename: &str) -> String {
    format!("{aof_filename}.manifest")
}

/// `temp-<appendfilename>.manifest`, written then renamed over the manifest.
pub fn temp_manifest_file_name(aof_filename: &str) -> String {
    format!("temp-{aof_filename}.manifest")
}

/// `temp-<appendfilename>.incr`: writes made while `CONFIG SET appendonly yes` waits for
/// its first rewrite.
pub fn temp_incr_file_name(aof_filename: &str) -> String {
    format!("temp-{aof_filename}.incr")
}

/// `appendfilename` must be a plain, non-empty name (Redis's config error texts).
pub fn check_append_filename(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        Err("appendfilename can't be empty")
    } else if name.contains(['/', '\\']) {
        Err("appendfilename can't be a path, just a filename")
    } else {
        Ok(())
    }
}

/// `appenddirname` must be a plain, non-empty name.
pub fn check_append_dirname(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        Err("appenddirname can't be empty")
    } else if name.contains(['/', '\\']) {
        Err("appenddirname can't be a path, just a dirname")
    } else {
        Ok(())
    }
}

/// Why the manifest could not be read from disk.
#[derive(Debug)]
pub enum ReadManifestError {
    /// "Fatal error: can't open the AOF manifest file <path> for reading: <error>".
    Io(PathBuf, io::Error),
    Invalid(ManifestError),
}

impl fmt::Display for ReadManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadManifestError::Io(p, e) => write!(
                f,
                "Fatal error: can't open the AOF manifest file {} for reading: {e}",
                p.display()
            ),
            ReadManifestError::Invalid(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ReadManifestError {}

/// The manifest in `aof_dir` (`aofLoadManifestFromDisk`): `None` when the directory or the
/// manifest does not exist (a fresh start, or a legacy single-file AOF to upgrade).
pub fn read_manifest(
    aof_dir: &Path,
    aof_filename: &str,
) -> Result<Option<AofManifest>, ReadManifestError> {
    if !aof_dir.is_dir() {
        return Ok(None);
    }
    let path = aof_dir.join(manifest_file_name(aof_filename));
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read(&path).map_err(|e| ReadManifestError::Io(path.clone(), e))?;
    AofManifest::parse(&text)
        .map(Some)
        .map_err(ReadManifestError::Invalid)
}

/// Replaces the manifest in `aof_dir` atomically, as `writeAofManifestFile`: the text goes
/// to the temp manifest, which is fsynced and renamed over the manifest, then the
/// directory is fsynced.
pub fn write_manifest(aof_dir: &Path, aof_filename: &str, m: &AofManifest) -> io::Result<()> {
    let tmp = aof_dir.join(temp_manifest_file_name(aof_filename));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&m.to_bytes())?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, aof_dir.join(manifest_file_name(aof_filename)))?;
    std::fs::File::open(aof_dir)?.sync_all()
}

/// `sdstrim(line, " \t\r\n")`.
fn trim(mut s: &[u8]) -> &[u8] {
    let junk = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    while s.first().is_some_and(junk) {
        s = &s[1..];
    }
    while s.last().is_some_and(junk) {
        s = &s[..s.len() - 1];
    }
    s
}

/// C's `atoll`: optional blanks and sign, then digits up to the first other byte,
/// saturating as glibc's `strtoll` does.
pub(crate) fn c_atoll(text: &[u8]) -> i64 {
    let mut i = 0;
    while i < text.len() && matches!(text[i], b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
        i += 1;
    }
    let neg = text.get(i) == Some(&b'-');
    if matches!(text.get(i), Some(b'-' | b'+')) {
        i += 1;
    }
    let mut v: i64 = 0;
    for &c in text[i..].iter().take_while(|c| c.is_ascii_digit()) {
        let d = (c - b'0') as i64;
        v = if neg {
            v.saturating_mul(10).saturating_sub(d)
        } else {
            v.saturating_mul(10).saturating_add(d)
        };
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &[u8]) -> ManifestError {
        AofManifest::parse(text).unwrap_err()
    }

    #[test]
    fn writes_the_verified_88_bytes() {
        let mut m = AofManifest::default();
        m.new_base_file(DEFAULT_APPEND_FILENAME, true);
        m.new_incr_file(DEFAULT_APPEND_FILENAME);
        let text = m.to_bytes();
        assert_eq!(
            text,
            b"file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n"
        );
        assert_eq!(text.len(), 88);
        assert_eq!(AofManifest::parse(&text).unwrap(), m);
    }

    #[test]
    fn a_rewrite_moves_files_to_history_as_redis_does() {
        let f = DEFAULT_APPEND_FILENAME;
        let mut m = AofManifest::parse(
            b"file appendonly.aof.2.base.rdb seq 2 type b\nfile appendonly.aof.2.incr.aof seq 2 type i\n",
        )
        .unwrap();
        // BGREWRITEAOF: a new incr first, then the new base; the old ones become history.
        assert_eq!(m.new_incr_file(f), b"appendonly.aof.3.incr.aof");
        assert_eq!(m.new_base_file(f, true), b"appendonly.aof.3.base.rdb");
        m.mark_rewritten_incr_as_history(true);
        // aof.md §2, "after a rewrite with aof-disable-auto-gc yes".
        assert_eq!(
            String::from_utf8(m.to_bytes()).unwrap(),
            "file appendonly.aof.3.base.rdb seq 3 type b\n\
             file appendonly.aof.2.incr.aof seq 2 type h\n\
             file appendonly.aof.2.base.rdb seq 2 type h\n\
             file appendonly.aof.3.incr.aof seq 3 type i\n"
        );
        assert_eq!(m.take_history().len(), 2);
        assert_eq!(m.last_incr_file(f), b"appendonly.aof.3.incr.aof");
        m.mark_rewritten_incr_as_history(false);
        assert!(m.incr.is_empty());
        assert_eq!(m.last_incr_file(f), b"appendonly.aof.4.incr.aof");
    }

    #[test]
    fn reads_leniently_like_redis() {
        let m = AofManifest::parse(
            b"# comment\nFILE \"my aof.aof.1.base.rdb\" SEQ 1 TYPE b\r\n\
              file x.1.incr.aof seq 1 type incr future x\n\
              file 'x.2.incr.aof' seq 2abc type i\n# last comment without newline",
        )
        .unwrap();
        assert_eq!(m.base.as_ref().unwrap().name, b"my aof.aof.1.base.rdb");
        assert_eq!(m.incr.len(), 2);
        assert_eq!(m.incr[1].seq, 2);
        assert_eq!((m.curr_base_seq, m.curr_incr_seq), (1, 2));
        // A negative seq is non-zero, which is all Redis asks (atoll, then `!file_seq`).
        assert!(AofManifest::parse(b"file a seq -1 type h\n").is_ok());
        // Comments only: a manifest with nothing in it.
        assert!(AofManifest::parse(b"# nothing\n").unwrap().is_empty());
    }

    #[test]
    fn refuses_with_redis_texts() {
        let cases: &[(&[u8], &str, Option<usize>)] = &[
            (b"", "Found an empty AOF manifest", None),
            (
                b"file a seq 1 type b\n\n",
                "Invalid AOF manifest file format",
                Some(2),
            ),
            (
                b"file a type b\n",
                "Invalid AOF manifest file format",
                Some(1),
            ),
            (
                b"file a seq 1 type b x\n",
                "Invalid AOF manifest file format",
                Some(1),
            ),
            (
                b"file a seq 0 type b\n",
                "Invalid AOF manifest file format",
                Some(1),
            ),
            (
                b"file a seq 1 type \"\"\n",
                "Invalid AOF manifest file format",
                Some(1),
            ),
            (
                b"file \"a seq 1 type b\n",
                "Invalid AOF manifest file format",
                Some(1),
            ),
            (
                b"file ../a seq 1 type b\n",
                "File can't be a path, just a filename",
                Some(1),
            ),
            (
                b"file a\\b seq 1 type b\n",
                "File can't be a path, just a filename",
                Some(1),
            ),
            (b"file a seq 1 type x\n", "Unknown AOF file type", Some(1)),
            (
                b"file a seq 1 type b\nfile b seq 2 type b\n",
                "Found duplicate base file information",
                Some(2),
            ),
            (
                b"file a seq 2 type i\nfile b seq 2 type i\n",
                "Found a non-monotonic sequence number",
                Some(2),
            ),
            (
                b"file a seq 1 type b",
                "The AOF manifest file contains too long line",
                None,
            ),
        ];
        for (text, reason, line) in cases {
            let e = err(text);
            assert_eq!(e.reason, *reason, "{}", String::from_utf8_lossy(text));
            assert_eq!(e.line.as_ref().map(|l| l.0), *line);
        }
        let long = format!("file {} seq 1 type b\n", "a".repeat(1100));
        assert_eq!(
            err(long.as_bytes()).reason,
            "The AOF manifest file contains too long line"
        );
        assert_eq!(
            err(b"file a seq 1 type x\n").to_string(),
            "*** FATAL AOF MANIFEST FILE ERROR ***\nReading the manifest file, at line 1\n\
             >>> 'file a seq 1 type x'\nUnknown AOF file type"
        );
    }

    #[test]
    fn quotes_names_as_sdscatrepr() {
        let mut m = AofManifest::default();
        for (i, name) in [&b"my aof"[..], b"q\"b", b"\x01\xff\t", b"plain.aof"]
            .iter()
            .enumerate()
        {
            m.incr.push(AofFileInfo {
                name: name.to_vec(),
                seq: i as i64 + 1,
                kind: AofFileType::Incr,
            });
        }
        m.curr_incr_seq = 4;
        let text = m.to_bytes();
        assert_eq!(
            String::from_utf8_lossy(&text),
            "file \"my aof\" seq 1 type i\nfile \"q\\\"b\" seq 2 type i\n\
             file \"\\x01\\xff\\t\" seq 3 type i\nfile plain.aof seq 4 type i\n"
        );
        assert_eq!(AofManifest::parse(&text).unwrap(), m);
    }

    #[test]
    fn names_and_config_checks() {
        assert_eq!(base_file_name("a.aof", 3, false), "a.aof.3.base.aof");
        assert_eq!(incr_file_name("a.aof", 3), "a.aof.3.incr.aof");
        assert_eq!(manifest_file_name("a.aof"), "a.aof.manifest");
        assert_eq!(temp_manifest_file_name("a.aof"), "temp-a.aof.manifest");
        assert_eq!(temp_incr_file_name("a.aof"), "temp-a.aof.incr");
        assert_eq!(
            check_append_filename("a/b"),
            Err("appendfilename can't be a path, just a filename")
        );
        assert_eq!(
            check_append_dirname(""),
            Err("appenddirname can't be empty")
        );
        assert_eq!(check_append_dirname("dir"), Ok(()));
        assert_eq!(c_atoll(b" -12x"), -12);
        assert_eq!(c_atoll(b"99999999999999999999"), i64::MAX);
    }
}
