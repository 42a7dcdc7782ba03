//! `macho-check --arch arm64|x86_64 --min-os 11.0 FILE`: is FILE a Node addon a user's Mac loads?
//!
//! The Mach-O structure is read with goblin. Printed: one JSON object with what was found and a list
//! of `problems`; the exit status is 0 when there are none, 1 when there are.
//!
//! Checked:
//! - a thin (not universal) 64-bit Mach-O dylib (`MH_DYLIB`) for the CPU asked for, plain subtype
//!   (not arm64e or x86_64h);
//! - `LC_BUILD_VERSION` (or the older `LC_VERSION_MIN_MACOSX`) for macOS, minimum OS exactly the floor;
//! - every linked library (`LC_LOAD_DYLIB` and its weak, re-export, lazy and upward kinds) is a
//!   `/usr/lib/lib*.dylib` every Mac has. A framework (`/System/Library/Frameworks/…`, what
//!   native-tls or a platform certificate verifier pull in), an `@rpath`/`@loader_path` library, or
//!   one from Homebrew or an SDK is a problem, and so is any `LC_RPATH`;
//! - `napi_register_module_v1` is in the export trie (what Node looks up after `dlopen`);
//! - the code signature: arm64 macOS kills a process that maps unsigned code, so on arm64 an
//!   `LC_CODE_SIGNATURE` is required; when there is one (either CPU), its SHA-256 CodeDirectory must
//!   cover the file up to the signature and every page hash must match. The blob format
//!   (Apple's `cs_blobs.h`) is read here; goblin only locates it.

use goblin::mach::constants::cputype::{CPU_TYPE_ARM64, CPU_TYPE_X86_64};
use goblin::mach::header::MH_DYLIB;
use goblin::mach::load_command::CommandVariant;
use goblin::mach::{Mach, MachO};
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::process::ExitCode;

const NAPI_ENTRY: &str = "napi_register_module_v1";
const PLATFORM_MACOS: u32 = 1;

struct Report {
    file_type: String,
    cpu: String,
    version_command: String,
    min_os: String,
    sdk: String,
    dylibs: Vec<String>,
    rpaths: Vec<String>,
    exports_napi_entry: bool,
    /// How many symbols the export trie holds (information: Apple's linker honours rustc's list of
    /// exports, the napi ones; zig 0.17 ignores it and exports every global symbol).
    export_count: usize,
    code_signature: String,
    problems: Vec<String>,
}

/// `X.Y.Z` nibble-encoded as `xxxx.yy.zz`, printed as Apple does (`11.0`, `10.15`, `14.2.1`).
fn version(v: u32) -> String {
    let (major, minor, patch) = (v >> 16, (v >> 8) & 0xff, v & 0xff);
    if patch == 0 {
        format!("{major}.{minor}")
    } else {
        format!("{major}.{minor}.{patch}")
    }
}

/// Libraries every Mac has at this path: `/usr/lib/libSystem.B.dylib`, `/usr/lib/libc++.1.dylib`,
/// `/usr/lib/libiconv.2.dylib`, … (no subdirectory: not `/usr/lib/swift/…`).
fn is_system_library(path: &str) -> bool {
    path.strip_prefix("/usr/lib/lib").is_some_and(|rest| rest.ends_with(".dylib") && !rest.contains('/'))
}

fn library_problem(path: &str) -> String {
    let why =
        if path.starts_with("/System/Library/Frameworks/") || path.starts_with("/System/Library/PrivateFrameworks/") {
            "an Apple framework (a dependency such as native-tls or a platform certificate verifier links these)"
        } else if path.starts_with('@') {
            "a library found relative to the binary or an rpath, which the platform package does not ship"
        } else if path.starts_with("/opt/homebrew/") || path.starts_with("/usr/local/") {
            "a Homebrew (or /usr/local) library, absent from a user's Mac"
        } else if path.contains(".sdk/") || path.contains("/Xcode") {
            "an SDK path, absent from a user's Mac"
        } else {
            "not a system library (only /usr/lib/lib*.dylib are)"
        };
    format!("links {path}: {why}")
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Checks the embedded signature at `dataoff..dataoff+datasize`: its CodeDirectory (SHA-256) must
/// cover the file up to the signature and every page hash must match. Returns a description.
fn check_signature(bytes: &[u8], dataoff: usize, datasize: usize) -> Result<String, String> {
    const SUPERBLOB: u32 = 0xfade_0cc0;
    const CODEDIRECTORY: u32 = 0xfade_0c02;
    const CD_SLOT: u32 = 0;
    const ADHOC: u32 = 0x2;
    let sig = bytes.get(dataoff..dataoff + datasize).ok_or("LC_CODE_SIGNATURE points past the end of the file")?;
    if be32(sig, 0) != Some(SUPERBLOB) {
        return Err("the code signature is not an embedded-signature SuperBlob".into());
    }
    let count = be32(sig, 8).ok_or("truncated SuperBlob")? as usize;
    let cd_at = (0..count)
        .filter_map(|i| Some((be32(sig, 12 + 8 * i)?, be32(sig, 16 + 8 * i)?)))
        .find(|(slot, _)| *slot == CD_SLOT)
        .map(|(_, off)| off as usize)
        .ok_or("the code signature has no CodeDirectory")?;
    let cd = sig.get(cd_at..).ok_or("truncated code signature")?;
    if be32(cd, 0) != Some(CODEDIRECTORY) {
        return Err("the CodeDirectory slot holds no CodeDirectory".into());
    }
    let flags = be32(cd, 12).ok_or("truncated CodeDirectory")?;
    let hash_offset = be32(cd, 16).ok_or("truncated CodeDirectory")? as usize;
    let code_slots = be32(cd, 28).ok_or("truncated CodeDirectory")? as usize;
    let code_limit = be32(cd, 32).ok_or("truncated CodeDirectory")? as usize;
    let (hash_size, hash_type, page_shift) = match cd.get(36..40) {
        Some(&[size, kind, _platform, shift]) => (size as usize, kind, shift),
        _ => return Err("truncated CodeDirectory".into()),
    };
    if hash_type != 2 || hash_size != 32 {
        return Err(format!("CodeDirectory hash type {hash_type} (size {hash_size}), not SHA-256"));
    }
    if code_limit != dataoff {
        return Err(format!("the signature covers {code_limit} bytes, the file has {dataoff} before the signature"));
    }
    let page = 1usize << page_shift;
    if code_slots != code_limit.div_ceil(page) {
        return Err(format!("{code_slots} page hashes for {code_limit} bytes of {page}-byte pages"));
    }
    for i in 0..code_slots {
        let data = &bytes[i * page..((i + 1) * page).min(code_limit)];
        let want = cd
            .get(hash_offset + i * hash_size..hash_offset + (i + 1) * hash_size)
            .ok_or("truncated CodeDirectory hashes")?;
        if Sha256::digest(data).as_slice() != want {
            return Err(format!("page {i} does not match its hash: the signature is invalid"));
        }
    }
    let kind = if flags & ADHOC != 0 { "ad-hoc" } else { "signed" };
    Ok(format!("{kind}, {code_slots} SHA-256 page hashes valid"))
}

fn check(bytes: &[u8], macho: &MachO, arch: &str, floor: &str) -> Report {
    let mut problems = Vec::new();
    let header = &macho.header;
    let file_type = goblin::mach::header::filetype_to_str(header.filetype).to_string();
    if header.filetype != MH_DYLIB {
        problems.push(format!("file type {file_type}, not a dylib (MH_DYLIB)"));
    }
    let cpu = match header.cputype {
        CPU_TYPE_ARM64 => "arm64".to_string(),
        CPU_TYPE_X86_64 => "x86_64".to_string(),
        other => format!("cputype {other:#x}"),
    };
    if cpu != arch {
        problems.push(format!("built for {cpu}, expected {arch}"));
    } else {
        // The plain subtype every Mac of that CPU runs: not arm64e (Node is an arm64 process and
        // cannot load it), not x86_64h (Haswell and later only). The top byte holds capability bits.
        let subtype = header.cpusubtype & 0x00ff_ffff;
        let plain = if arch == "arm64" { 0 } else { 3 };
        if subtype != plain {
            problems.push(format!("CPU subtype {subtype}, not the plain {arch} ({plain})"));
        }
    }
    if !macho.is_64 {
        problems.push("a 32-bit Mach-O".into());
    }

    let (mut version_command, mut min_os, mut sdk) = (String::new(), String::new(), String::new());
    let mut signature = None;
    for lc in &macho.load_commands {
        match &lc.command {
            CommandVariant::BuildVersion(b) => {
                version_command = "LC_BUILD_VERSION".into();
                min_os = version(b.minos);
                sdk = version(b.sdk);
                if b.platform != PLATFORM_MACOS {
                    problems.push(format!("LC_BUILD_VERSION platform {}, not macOS (1)", b.platform));
                }
            }
            CommandVariant::VersionMinMacosx(v) => {
                version_command = "LC_VERSION_MIN_MACOSX".into();
                min_os = version(v.version);
                sdk = version(v.sdk);
            }
            CommandVariant::CodeSignature(c) => signature = Some((c.dataoff, c.datasize)),
            _ => {}
        }
    }
    if version_command.is_empty() {
        problems.push("no LC_BUILD_VERSION (or LC_VERSION_MIN_MACOSX): no minimum macOS".into());
    } else if min_os != floor {
        problems.push(format!("minimum macOS {min_os}, expected the floor {floor}"));
    }

    // libs[0] is goblin's placeholder for the binary itself.
    let dylibs: Vec<String> = macho.libs.iter().skip(1).map(|s| s.to_string()).collect();
    if dylibs.is_empty() {
        problems.push("links no library at all (not even libSystem)".into());
    }
    for lib in dylibs.iter().filter(|l| !is_system_library(l)) {
        problems.push(library_problem(lib));
    }
    let rpaths: Vec<String> = macho.rpaths.iter().map(|s| s.to_string()).collect();
    for rpath in &rpaths {
        problems.push(format!("LC_RPATH {rpath}: the binary searches for libraries outside /usr/lib"));
    }

    let (exports_napi_entry, export_count) = match macho.exports() {
        Ok(exports) => (exports.iter().any(|e| e.name == format!("_{NAPI_ENTRY}")), exports.len()),
        Err(e) => {
            problems.push(format!("the export trie cannot be read: {e}"));
            (false, 0)
        }
    };
    if !exports_napi_entry {
        problems.push(format!("{NAPI_ENTRY} is not exported: Node cannot register the module"));
    }

    let code_signature = match signature {
        None if arch == "arm64" => {
            problems.push("no LC_CODE_SIGNATURE: arm64 macOS refuses unsigned code".into());
            "none".to_string()
        }
        None => "none".to_string(),
        Some((off, size)) => check_signature(bytes, off as usize, size as usize).unwrap_or_else(|e| {
            problems.push(e.clone());
            format!("invalid: {e}")
        }),
    };

    Report {
        file_type,
        cpu,
        version_command,
        min_os,
        sdk,
        dylibs,
        rpaths,
        exports_napi_entry,
        export_count,
        code_signature,
        problems,
    }
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_list(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|s| json_str(s)).collect();
    format!("[{}]", items.join(","))
}

fn to_json(file: &str, r: &Report) -> String {
    format!(
        "{{\"file\":{},\"fileType\":{},\"cpu\":{},\"versionCommand\":{},\"minOs\":{},\"sdk\":{},\"dylibs\":{},\"rpaths\":{},\"exportsNapiEntry\":{},\"exportCount\":{},\"codeSignature\":{},\"problems\":{}}}",
        json_str(file),
        json_str(&r.file_type),
        json_str(&r.cpu),
        json_str(&r.version_command),
        json_str(&r.min_os),
        json_str(&r.sdk),
        json_list(&r.dylibs),
        json_list(&r.rpaths),
        r.exports_napi_entry,
        r.export_count,
        json_str(&r.code_signature),
        json_list(&r.problems),
    )
}

fn usage() -> ExitCode {
    eprintln!("usage: macho-check --arch arm64|x86_64 --min-os 11.0 FILE");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mut arch, mut floor, mut file) = (None, None, None);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--arch" => arch = it.next(),
            "--min-os" => floor = it.next(),
            _ if file.is_none() && !a.starts_with("--") => file = Some(a),
            _ => return usage(),
        }
    }
    let (Some(arch), Some(floor), Some(file)) = (arch, floor, file) else {
        return usage();
    };
    if arch != "arm64" && arch != "x86_64" {
        return usage();
    }
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("macho-check: {file}: {e}");
            return ExitCode::from(2);
        }
    };
    let report = match Mach::parse(&bytes) {
        Ok(Mach::Binary(macho)) => check(&bytes, &macho, arch, floor),
        Ok(Mach::Fat(_)) => not_thin(file, "a universal (fat) Mach-O; each platform package holds one thin binary"),
        Err(e) => not_thin(file, &format!("not a Mach-O file: {e}")),
    };
    println!("{}", to_json(file, &report));
    if report.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn not_thin(_file: &str, problem: &str) -> Report {
    Report {
        file_type: String::new(),
        cpu: String::new(),
        version_command: String::new(),
        min_os: String::new(),
        sdk: String::new(),
        dylibs: Vec::new(),
        rpaths: Vec::new(),
        exports_napi_entry: false,
        export_count: 0,
        code_signature: String::new(),
        problems: vec![problem.to_string()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_libraries() {
        assert!(is_system_library("/usr/lib/libSystem.B.dylib"));
        assert!(is_system_library("/usr/lib/libc++.1.dylib"));
        assert!(!is_system_library("/usr/lib/swift/libswiftCore.dylib"));
        assert!(!is_system_library("/System/Library/Frameworks/Security.framework/Versions/A/Security"));
        assert!(!is_system_library("/opt/homebrew/opt/openssl@3/lib/libssl.3.dylib"));
        assert!(!is_system_library("@rpath/libfoo.dylib"));
    }

    #[test]
    fn versions() {
        assert_eq!(version(0x000b_0000), "11.0");
        assert_eq!(version(0x000a_0f00), "10.15");
        assert_eq!(version(0x000e_0201), "14.2.1");
    }
}
