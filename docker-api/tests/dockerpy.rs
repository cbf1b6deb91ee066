//! docker-py (the Python SDK) against the front end: tests/py/dockerpy_smoke.py. Skipped,
//! with a printed reason, when python3 or the `docker` package is not installed (a
//! failure under CI=true).

mod common;

use common::*;

#[tokio::test]
async fn docker_py_smoke() {
    let have = std::process::Command::new("python3")
        .args(["-c", "import docker"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        return cannot_run("python3 with the `docker` package (docker-py) is not installed");
    }
    let srv = start().await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/dockerpy_smoke.py");
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        tokio::process::Command::new("python3")
            .arg(script)
            .env("DOCKER_HOST", srv.host())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("docker-py smoke test timed out")
    .expect("python3");
    assert!(
        out.status.success(),
        "stdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(text(&out.stdout).contains("docker-py ok"));
}
