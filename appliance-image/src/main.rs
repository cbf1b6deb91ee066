//! `appliance-image --tether PATH --out DIR`: builds the boot disk of the container VM
//! template from a static tether (see docs/container-vm.md, Boot).

use clap::Parser;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    about = "Build the container VM template boot disk (flat VMDK with the tether as /sbin/init)"
)]
struct Args {
    /// The tether binary, statically linked:
    /// RUSTFLAGS="-C target-feature=+crt-static" cargo build --release -p tether
    /// --target x86_64-unknown-linux-gnu
    #[arg(long)]
    tether: PathBuf,
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value = "vch-boot")]
    name: String,
    /// Accept a dynamically linked tether (runs only in the simulator's sandbox, which
    /// executes it with this machine's loader and libraries).
    #[arg(long)]
    allow_dynamic: bool,
}

fn main() {
    let a = Args::parse();
    let r = if a.allow_dynamic {
        Ok(())
    } else {
        appliance_image::check_static(&a.tether)
    }
    .and_then(|()| appliance_image::build_boot_disk(&a.tether, &a.out, &a.name));
    match r {
        Ok(d) => println!("{}\n{}", d.descriptor.display(), d.extent.display()),
        Err(e) => {
            eprintln!("appliance-image: {e}");
            std::process::exit(1);
        }
    }
}
