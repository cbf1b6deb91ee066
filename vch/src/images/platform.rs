//! Platforms (`linux/amd64`, `linux/arm64/v8`) and the matching rule used to pick one
//! entry of a manifest list or OCI index, normalised like containerd's `platforms`.

use super::error::{ImageError, Result};
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    pub fn linux_amd64() -> Platform {
        Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        }
    }

    /// Parses `os[/arch[/variant]]` (`--platform`); aliases such as `x86_64` and
    /// `aarch64` are normalised.
    pub fn parse(s: &str) -> Result<Platform> {
        let bad = || ImageError::InvalidArgument(format!("invalid platform {s:?}"));
        let parts: Vec<&str> = s.split('/').collect();
        if parts.is_empty() || parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
            return Err(bad());
        }
        let os = parts[0].to_ascii_lowercase();
        let arch = parts.get(1).copied().unwrap_or("amd64");
        let variant = parts.get(2).map(|v| v.to_ascii_lowercase());
        let ok = |x: &str| x.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !ok(&os) || !ok(arch) || variant.as_deref().is_some_and(|v| !ok(v)) {
            return Err(bad());
        }
        Ok(Platform::normalized(&os, arch, variant.as_deref()))
    }

    pub fn normalized(os: &str, arch: &str, variant: Option<&str>) -> Platform {
        let arch = arch.to_ascii_lowercase();
        let (architecture, variant) = match (arch.as_str(), variant) {
            ("x86_64" | "x86-64" | "amd64", v) => ("amd64", v.map(str::to_string)),
            ("i386" | "386", v) => ("386", v.map(str::to_string)),
            ("aarch64" | "arm64", Some("8") | Some("v8") | None) => ("arm64", None),
            ("aarch64" | "arm64", v) => ("arm64", v.map(str::to_string)),
            ("armhf", _) => ("arm", Some("v7".to_string())),
            ("armel", _) => ("arm", Some("v6".to_string())),
            ("arm", Some(v)) if !v.starts_with('v') => ("arm", Some(format!("v{v}"))),
            ("arm", None) => ("arm", Some("v7".to_string())),
            (a, v) => (a, v.map(str::to_string)),
        };
        Platform {
            os: os.to_ascii_lowercase(),
            architecture: architecture.to_string(),
            variant: variant.filter(|v| !v.is_empty()),
        }
    }

    /// Whether an index entry's platform satisfies this (requested) platform. A request
    /// without a variant accepts any variant of the architecture.
    pub fn matches(&self, os: &str, arch: &str, variant: Option<&str>) -> bool {
        let other = Platform::normalized(os, arch, variant);
        other.os == self.os
            && other.architecture == self.architecture
            && (self.variant.is_none() || self.variant == other.variant)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_matches() {
        let p = Platform::parse("linux/amd64").unwrap();
        assert_eq!(p, Platform::linux_amd64());
        assert!(p.matches("linux", "amd64", None));
        assert!(p.matches("linux", "x86_64", None));
        assert!(!p.matches("linux", "arm64", None));
        assert!(!p.matches("windows", "amd64", None));
        let a = Platform::parse("linux/arm64/v8").unwrap();
        assert_eq!(a.to_string(), "linux/arm64");
        assert!(a.matches("linux", "arm64", Some("v8")));
        let arm = Platform::parse("linux/arm/v7").unwrap();
        assert!(arm.matches("linux", "arm", Some("v7")));
        assert!(!arm.matches("linux", "arm", Some("v6")));
        assert!(Platform::parse("linux//x").is_err());
        assert!(Platform::parse("a/b/c/d").is_err());
    }
}
