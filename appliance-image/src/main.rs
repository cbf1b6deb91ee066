//! `appliance-image --tether target/release/tether --out DIR`: builds the boot disk of
//! the container VM template.

use clap::Parser;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    about = "Build the container VM template boot disk (flat VMDK with the tether as /sbin/init)"
)]
struct Args {
    /// The tether binary (a static build for real VMs).
    #[arg(long)]
    tether: PathBuf,
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value = "vch-boot")]
    name: String,
}

fn main() {
    let a = Args::parse();
    match appliance_image::build_boot_disk(&a.tether, &a.out, &a.name) {
        Ok(d) => println!("{}\n{}", d.descriptor.display(), d.extent.display()),
        Err(e) => {
            eprintln!("appliance-image: {e}");
            std::process::exit(1);
        }
    }
}
