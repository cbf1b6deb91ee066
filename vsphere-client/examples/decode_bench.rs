//! Benchmark: decode a RetrievePropertiesEx response of N ObjectContents × 3 properties
//! (default 100,000) on one core, and report time and peak memory against the XML size.
//!
//!     cargo run --release -p vsphere-client --example decode_bench [-- N]
//!
//! Prints one JSON object.

use std::time::Instant;
use vsphere_client::soap;

fn rss_kib(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn response(n: usize) -> String {
    let mut s = String::with_capacity(n * 420 + 1024);
    s.push_str(soap::ENVELOPE_OPEN);
    s.push_str(r#"<RetrievePropertiesExResponse xmlns="urn:vim25"><returnval><token>next</token>"#);
    for i in 0..n {
        s.push_str(&format!(
            r#"<objects><obj type="VirtualMachine">vm-{i}</obj><propSet><name>name</name><val xsi:type="xsd:string">container-{i}-abcdef</val></propSet><propSet><name>runtime.powerState</name><val xsi:type="VirtualMachinePowerState">poweredOn</val></propSet><propSet><name>config.hardware.memoryMB</name><val xsi:type="xsd:int">{}</val></propSet></objects>"#,
            128 + i % 4096
        ));
    }
    s.push_str("</returnval></RetrievePropertiesExResponse>");
    s.push_str(soap::ENVELOPE_CLOSE);
    s
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let xml = response(n);
    let before = rss_kib("VmRSS:");
    // Reset the high-water mark so VmHWM measures the decode alone.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let t = Instant::now();
    let (objects, token) =
        vsphere_client::decode::retrieve_result(xml.as_bytes()).expect("decodes");
    let secs = t.elapsed().as_secs_f64();
    let peak = rss_kib("VmHWM:");
    assert_eq!(objects.len(), n);
    assert_eq!(token.as_deref(), Some("next"));
    assert_eq!(
        objects[n - 1].text("name"),
        Some(format!("container-{}-abcdef", n - 1).as_str())
    );
    let xml_mib = xml.len() as f64 / 1048576.0;
    let extra_mib = peak.saturating_sub(before) as f64 / 1024.0;
    println!(
        "{{\"bench\":\"decode_retrieve_result\",\"objects\":{n},\"xml_mib\":{xml_mib:.1},\"seconds\":{secs:.3},\"objects_per_s\":{:.0},\"peak_extra_mib\":{extra_mib:.1},\"peak_extra_over_xml\":{:.2}}}",
        n as f64 / secs,
        extra_mib / xml_mib
    );
}
