//! The cluster secret file: 32 random bytes, hex-encoded, owner-only
//! permissions. The server generates it on first start; members and the
//! CLI read the same file. The secret may instead come from the
//! [`SECRET_ENV`] environment variable (hex). Neither the secret nor any
//! of its digits ever appears in an error or a log line.

use std::io::Write;
use std::path::{Path, PathBuf};

use rand::RngCore;
use switchboard_core::auth::{Secret, SecretTooShort};

/// Bytes of a generated secret.
pub const GENERATED_SECRET_BYTES: usize = 32;

/// The environment variable that may hold the secret, as hex digits.
pub const SECRET_ENV: &str = "SWITCHBOARD_SECRET";

/// Largest secret file accepted, bytes (a hex secret plus whitespace).
const SECRET_FILE_BYTES_MAX: u64 = 4096;

/// What went wrong with a secret file.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The file could not be read.
    #[error("cannot read secret file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file could not be created.
    #[error("cannot create secret file {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is missing (members never create it; start the server
    /// first or copy the server's file).
    #[error("secret file {path} does not exist (start `switchboard serve` once to create it, or pass --secret-file)")]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// The file does not hold hex digits.
    #[error("secret file {path} must hold the secret as hex digits ({detail})")]
    NotHex {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The decoded secret is too short.
    #[error("secret file {path}: {source}")]
    TooShort {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: SecretTooShort,
    },
    /// The file may be read by other users (group or others have
    /// permissions on it).
    #[error("secret file {path} is readable by other users (mode {mode:o}): run `chmod 600 {path}`, or pass --allow-readable-secret to use it anyway", path = path.display())]
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The directory for a new secret file does not exist (only the
    /// default location's directory is created).
    #[error("the directory {dir} for the secret file does not exist: create it, or leave --secret-file at its default", dir = dir.display())]
    NoDirectory {
        /// The missing directory.
        dir: PathBuf,
    },
    /// The file is larger than any secret.
    #[error("secret file {path} is larger than {SECRET_FILE_BYTES_MAX} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// The environment variable does not hold a valid secret.
    #[error("environment variable {SECRET_ENV} must hold the secret as hex digits ({detail})")]
    Env {
        /// What is wrong (never the value).
        detail: String,
    },
}

/// The secret in [`SECRET_ENV`], if that variable is set and not empty.
pub fn from_env() -> Result<Option<Secret>, SecretError> {
    match std::env::var(SECRET_ENV) {
        Ok(v) if !v.trim().is_empty() => parse_env(&v).map(Some),
        Ok(_) | Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(SecretError::Env {
            detail: "not valid UTF-8".into(),
        }),
    }
}

/// Parses the value of [`SECRET_ENV`].
fn parse_env(value: &str) -> Result<Secret, SecretError> {
    let value = value.trim();
    if value.len() as u64 > SECRET_FILE_BYTES_MAX {
        return Err(SecretError::Env {
            detail: format!("longer than {SECRET_FILE_BYTES_MAX} digits"),
        });
    }
    let bytes = from_hex(value).map_err(|detail| SecretError::Env { detail })?;
    Secret::new(bytes).map_err(|e| SecretError::Env {
        detail: e.to_string(),
    })
}

/// The default location: `$XDG_STATE_HOME/switchboard/secret`, or
/// `./.switchboard/secret` when `XDG_STATE_HOME` is not set.
pub fn default_path() -> PathBuf {
    match std::env::var_os("XDG_STATE_HOME") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("switchboard").join("secret"),
        _ => PathBuf::from(".switchboard").join("secret"),
    }
}

/// Reads the secret at `path`; a file that other users may read is
/// refused ([`SecretError::Exposed`]).
pub fn load(path: &Path) -> Result<Secret, SecretError> {
    load_with(path, false)
}

/// Reads the secret at `path`; with `allow_readable`, a file other users
/// may read is accepted with a warning instead of refused.
pub fn load_with(path: &Path, allow_readable: bool) -> Result<Secret, SecretError> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(SecretError::Missing {
                path: path.to_owned(),
            })
        }
        Err(source) => {
            return Err(SecretError::Read {
                path: path.to_owned(),
                source,
            })
        }
    };
    if meta.len() > SECRET_FILE_BYTES_MAX {
        return Err(SecretError::TooLarge {
            path: path.to_owned(),
        });
    }
    check_private(path, &meta, allow_readable)?;
    let text = std::fs::read_to_string(path).map_err(|source| SecretError::Read {
        path: path.to_owned(),
        source,
    })?;
    let bytes = from_hex(text.trim()).map_err(|detail| SecretError::NotHex {
        path: path.to_owned(),
        detail,
    })?;
    Secret::new(bytes).map_err(|source| SecretError::TooShort {
        path: path.to_owned(),
        source,
    })
}

/// Reads the secret at `path`, or creates the file with a fresh random
/// secret (owner-only permissions). The directory is created only for the
/// [default location](default_path); elsewhere a missing directory is an
/// error (a typo should not silently create a new secret). Returns the
/// secret and whether it was created.
pub fn load_or_create(path: &Path) -> Result<(Secret, bool), SecretError> {
    load_or_create_with(path, false)
}

/// [`load_or_create`], accepting an existing file other users may read
/// when `allow_readable` is set.
pub fn load_or_create_with(
    path: &Path,
    allow_readable: bool,
) -> Result<(Secret, bool), SecretError> {
    match load_with(path, allow_readable) {
        Ok(s) => return Ok((s, false)),
        Err(SecretError::Missing { .. }) => {}
        Err(e) => return Err(e),
    }
    let mut bytes = [0u8; GENERATED_SECRET_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let write_err = |source| SecretError::Write {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() && path != default_path() {
            return Err(SecretError::NoDirectory {
                dir: dir.to_owned(),
            });
        }
        create_private_dir(dir).map_err(write_err)?;
    }
    let mut f = create_private_file(path).map_err(write_err)?;
    let mut text = to_hex(&bytes);
    text.push('\n');
    f.write_all(text.as_bytes()).map_err(write_err)?;
    f.sync_all().map_err(write_err)?;
    let secret = Secret::new(bytes.to_vec()).map_err(|source| SecretError::TooShort {
        path: path.to_owned(),
        source,
    })?;
    Ok((secret, true))
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

#[cfg(unix)]
fn create_private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn create_private_file(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

#[cfg(unix)]
fn check_private(
    path: &Path,
    meta: &std::fs::Metadata,
    allow_readable: bool,
) -> Result<(), SecretError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 == 0 {
        return Ok(());
    }
    if !allow_readable {
        return Err(SecretError::Exposed {
            path: path.to_owned(),
            mode,
        });
    }
    tracing::warn!(
        path = %path.display(),
        mode = format_args!("{mode:o}"),
        "secret file is readable by other users (allowed by --allow-readable-secret); run chmod 600 on it"
    );
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_: &Path, _: &std::fs::Metadata, _: bool) -> Result<(), SecretError> {
    Ok(())
}

/// Lowercase hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// Decodes hex digits (either case).
pub fn from_hex(s: &str) -> Result<Vec<u8>, String> {
    if s.len() % 2 != 0 {
        return Err(format!("odd number of digits ({})", s.len()));
    }
    fn digit(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    s.as_bytes()
        .chunks(2)
        .enumerate()
        .map(|(i, pair)| match (digit(pair[0]), digit(pair[1])) {
            (Some(h), Some(l)) => Ok(h << 4 | l),
            _ => Err(format!("not a hex digit at position {}", 2 * i)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_values_are_parsed_and_errors_never_show_the_value() {
        let good = "00112233445566778899aabbccddeeff";
        assert!(parse_env(&format!(" {good}\n")).is_ok());
        for bad in ["0011zz", "abc", "00112233"] {
            let e = parse_env(bad).expect_err("refused").to_string();
            assert!(e.contains(SECRET_ENV), "{e}");
            assert!(!e.contains(bad), "the value leaked: {e}");
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "switchboard-secret-{name}-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn write_private(path: &Path, text: &str) {
        std::fs::write(path, text).ok();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).ok();
        }
    }

    #[test]
    fn hex_roundtrip() {
        let b = [0u8, 1, 0xab, 0xff, 0x10];
        assert_eq!(from_hex(&to_hex(&b)), Ok(b.to_vec()));
        assert!(from_hex("abc").is_err());
        assert!(from_hex("zz").is_err());
        assert_eq!(from_hex("ABcd"), Ok(vec![0xab, 0xcd]));
    }

    #[test]
    fn created_once_then_read_back_with_owner_only_permissions() {
        let dir = temp_dir("create");
        std::fs::create_dir_all(dir.join("nested")).ok();
        let path = dir.join("nested").join("secret");
        let Ok((_, created)) = load_or_create(&path) else {
            panic!("create failed");
        };
        assert!(created);
        let Ok((_, created)) = load_or_create(&path) else {
            panic!("reload failed");
        };
        assert!(!created);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).map(|m| m.permissions().mode() & 0o777);
            assert_eq!(mode.ok(), Some(0o600));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_directory_is_an_error_away_from_the_default_path() {
        let dir = temp_dir("nodir");
        let path = dir.join("typo").join("secret");
        assert!(matches!(
            load_or_create(&path),
            Err(SecretError::NoDirectory { .. })
        ));
        assert!(!dir.exists(), "nothing was created");
    }

    #[cfg(unix)]
    #[test]
    fn a_file_others_may_read_is_refused_unless_allowed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp_dir("exposed");
        std::fs::create_dir_all(&dir).ok();
        let path = dir.join("secret");
        std::fs::write(&path, to_hex(&[7u8; 32])).ok();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).ok();
        let err = load(&path).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("chmod 600"), "{err}");
        assert!(load_with(&path, true).is_ok());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).ok();
        assert!(load(&path).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_files_are_typed_errors() {
        let dir = temp_dir("bad");
        std::fs::create_dir_all(&dir).ok();
        let missing = dir.join("missing");
        assert!(matches!(load(&missing), Err(SecretError::Missing { .. })));
        let not_hex = dir.join("nothex");
        write_private(&not_hex, "hello world");
        assert!(matches!(load(&not_hex), Err(SecretError::NotHex { .. })));
        let short = dir.join("short");
        write_private(&short, "abcd");
        assert!(matches!(load(&short), Err(SecretError::TooShort { .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
