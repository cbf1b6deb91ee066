//! The container VM template image: a small ext4 boot disk whose `/sbin/init` is the
//! tether, written as a monolithic flat VMDK (text descriptor + raw extent) ready to be
//! uploaded to a datastore and attached (independent, non-persistent) to the VCH's
//! template VM. A kernel/initrd for a KVM micro-VM runtime will join it later.
//!
//! ext4 because `mkfs.ext4 -d` (e2fsprogs, on every Debian) builds it from a directory
//! without root or loop devices, and every guest kernel mounts it.

pub mod elf;

use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("mkfs.ext4 failed: {0}")]
    Mkfs(String),
    #[error("{0}: {1}")]
    Elf(String, elf::ElfError),
    #[error(
        "{path} is dynamically linked (it needs {interp}), but a VM's boot disk has no loader \
         or libraries: build the tether static (RUSTFLAGS=\"-C target-feature=+crt-static\" \
         cargo build --release -p tether --target x86_64-unknown-linux-gnu), or allow a \
         dynamic one explicitly (--allow-dynamic) for the simulator, which runs it with this \
         machine's libraries"
    )]
    NotStatic { path: String, interp: String },
    #[error("{0} is not a boot disk image: {1}")]
    NotBootImage(String, String),
}

/// The files of a built boot disk.
#[derive(Debug, Clone)]
pub struct BootDisk {
    /// `<name>.vmdk`, the descriptor.
    pub descriptor: PathBuf,
    /// `<name>-flat.vmdk`, the raw ext4 image.
    pub extent: PathBuf,
}

fn io(what: &Path) -> impl FnOnce(std::io::Error) -> ImageError + '_ {
    move |e| ImageError::Io(what.display().to_string(), e)
}

/// The VMDK descriptor for a flat extent of `bytes`, in the form ESXi writes.
pub fn flat_descriptor(extent_name: &str, bytes: u64) -> String {
    format!(
        "# Disk DescriptorFile\nversion=1\nencoding=\"UTF-8\"\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"vmfs\"\n\n# Extent description\nRW {} VMFS \"{extent_name}\"\n\n# The Disk Data Base\n#DDB\n\nddb.adapterType = \"lsilogic\"\nddb.virtualHWVersion = \"19\"\n",
        bytes / 512
    )
}

/// Builds `<out>/<name>.vmdk` + `<name>-flat.vmdk`: an ext4 image of directory `stage`
/// with `spare` bytes of room, as a flat VMDK. Returns (descriptor, extent).
pub fn build_ext4_disk(
    stage: &Path,
    out: &Path,
    name: &str,
    spare: u64,
) -> Result<(PathBuf, PathBuf), ImageError> {
    std::fs::create_dir_all(out).map_err(io(out))?;
    let used = dir_bytes(stage);
    // ext4 metadata (inode tables, bitmaps) grows with the size: keep 10% on top.
    let bytes = (used + used / 10 + spare + (4 << 20)).div_ceil(1 << 20) << 20;
    let extent_name = format!("{name}-flat.vmdk");
    let extent = out.join(&extent_name);
    let f = std::fs::File::create(&extent).map_err(io(&extent))?;
    f.set_len(bytes).map_err(io(&extent))?;
    drop(f);
    let res = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-O", "^has_journal", "-L"])
        // ext4 labels hold 16 bytes.
        .arg(name.chars().take(16).collect::<String>())
        .arg("-d")
        .arg(stage)
        .arg(&extent)
        .output()
        .map_err(|e| ImageError::Mkfs(format!("cannot run mkfs.ext4 (e2fsprogs): {e}")))?;
    if !res.status.success() {
        return Err(ImageError::Mkfs(
            String::from_utf8_lossy(&res.stderr).into_owned(),
        ));
    }
    let descriptor = out.join(format!("{name}.vmdk"));
    std::fs::write(&descriptor, flat_descriptor(&extent_name, bytes)).map_err(io(&descriptor))?;
    Ok((descriptor, extent))
}

fn dir_bytes(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.filter_map(Result::ok)
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => 4096 + dir_bytes(&e.path()),
            Ok(m) => m.len() + 4096,
            Err(_) => 0,
        })
        .sum()
}

/// Builds `<out>/<name>.vmdk` + `<name>-flat.vmdk` holding `/sbin/init` = `tether`.
pub fn build_boot_disk(tether: &Path, out: &Path, name: &str) -> Result<BootDisk, ImageError> {
    std::fs::create_dir_all(out).map_err(io(out))?;
    let stage = out.join(format!(".{name}-stage"));
    let _ = std::fs::remove_dir_all(&stage);
    let sbin = stage.join("sbin");
    std::fs::create_dir_all(&sbin).map_err(io(&sbin))?;
    for d in ["dev", "proc", "sys", "run", "tmp"] {
        std::fs::create_dir_all(stage.join(d)).map_err(io(&stage))?;
    }
    let init = sbin.join("init");
    std::fs::copy(tether, &init).map_err(io(tether))?;
    let disk = build_ext4_disk(&stage, out, name, 8 << 20);
    let _ = std::fs::remove_dir_all(&stage);
    let (descriptor, extent) = disk?;
    Ok(BootDisk { descriptor, extent })
}

/// Refuses a dynamically linked binary (one that names a loader in `PT_INTERP`).
pub fn check_static(binary: &Path) -> Result<(), ImageError> {
    let bytes = std::fs::read(binary).map_err(io(binary))?;
    let path = binary.display().to_string();
    match elf::interpreter(&bytes) {
        Ok(None) => Ok(()),
        Ok(Some(interp)) => Err(ImageError::NotStatic { path, interp }),
        Err(e) => Err(ImageError::Elf(path, e)),
    }
}

/// Checks that `image` is a flat boot disk as `build_boot_disk` writes its extent (raw
/// ext4, whole 512-byte sectors) and returns its size: catches a descriptor or a tether
/// binary passed where the image is expected.
pub fn check_boot_image(image: &Path) -> Result<u64, ImageError> {
    let path = image.display().to_string();
    let bad = |why: &str| ImageError::NotBootImage(path.clone(), why.to_string());
    let mut f = std::fs::File::open(image).map_err(io(image))?;
    let len = f.metadata().map_err(io(image))?.len();
    let mut head = Vec::with_capacity(1082);
    use std::io::Read;
    (&mut f)
        .take(1082)
        .read_to_end(&mut head)
        .map_err(io(image))?;
    if head.starts_with(b"# Disk DescriptorFile") {
        return Err(bad(
            "this is a VMDK descriptor; give the flat extent (<name>-flat.vmdk)",
        ));
    }
    if head.len() < 1082 {
        return Err(bad("too small to hold a filesystem"));
    }
    // The ext4 superblock starts at 1024; its magic 0xEF53 at offset 56 in it.
    if head[1080..1082] != [0x53, 0xEF] {
        return Err(bad("no ext4 filesystem (build one with appliance-image)"));
    }
    if len % 512 != 0 {
        return Err(bad("its size is not a whole number of 512-byte sectors"));
    }
    Ok(len)
}
