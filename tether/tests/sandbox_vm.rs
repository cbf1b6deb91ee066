//! Container VMs that really run: the simulator's process sandbox boots the tether from
//! a boot disk, and everything is driven through vim25 calls (vsphere-client). Needs
//! root (namespaces, loop devices, cgroups); skipped with a message otherwise.

mod common;

use common::{attached_loops, skip, Env};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_hi_runs_logs_exits_and_powers_off() {
    if skip() {
        return;
    }
    let env = Env::start().await;
    let (out, code) = env.run("hi", &["echo", "hi"], 128).await;
    assert_eq!(out, "hi\n");
    assert_eq!(code, 0);
    let (out, code) = env
        .run(
            "three",
            &["sh", "-c", "echo out; echo err >&2; exit 3"],
            128,
        )
        .await;
    // stdout and stderr are separate pipes: each arrives whole, in either order.
    assert!(out == "out\nerr\n" || out == "err\nout\n", "{out}");
    assert_eq!(code, 3);
    let (out, code) = env.run("nocmd", &["no-such-command"], 128).await;
    assert_eq!(code, 127);
    assert!(out.contains("executable file not found in $PATH"), "{out}");
    env.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_is_isolated() {
    if skip() {
        return;
    }
    let env = Env::start().await;
    let script = "echo pid=$$; hostname; ls /sys/class/net; ls /proc | grep -c '^[0-9]'";
    let (out, code) = env.run("iso", &["sh", "-c", script], 128).await;
    assert_eq!(code, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    // Own pid namespace: the tether is pid 1 and the shell one of the first few pids.
    let pid: u32 = lines[0].trim_start_matches("pid=").parse().unwrap();
    assert!((2..=5).contains(&pid), "{}", lines[0]);
    assert_eq!(lines[1], "iso");
    // Own network namespace: loopback only (no NIC on this VM).
    assert_eq!(lines[2], "lo");
    let procs: usize = lines[3].parse().unwrap();
    assert!(procs <= 4, "{procs} processes visible");

    // Writes to / land in the scratch disk, never in the shared layer disk.
    let layer = || {
        env.client
            .download_bytes("DC0", "datastore1", "vch/layers/busybox-flat.vmdk", None)
    };
    let before = layer().await.unwrap();
    let (out, code) = env
        .run(
            "writer",
            &["sh", "-c", "echo s > /secret; rm /bin/ls; echo done"],
            128,
        )
        .await;
    assert_eq!((out.as_str(), code), ("done\n", 0));
    assert!(layer().await.unwrap() == before, "the layer disk changed");
    // A second container of the same image sees neither the file nor the deletion.
    let (out, _) = env
        .run(
            "reader",
            &[
                "sh",
                "-c",
                "test -e /secret && echo seen || echo unseen; test -e /bin/ls && echo ls",
            ],
            128,
        )
        .await;
    assert_eq!(out, "unseen\nls\n");
    env.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_hog_is_killed_at_the_vm_limit() {
    if skip() {
        return;
    }
    let env = Env::start().await;
    // 64 MiB VM; the shell tries to hold 200 MB in a variable.
    let (out, code) = env
        .run(
            "hog",
            &[
                "sh",
                "-c",
                "x=$(head -c 200000000 /dev/zero | tr '\\000' a); echo survived",
            ],
            64,
        )
        .await;
    assert_eq!(code, 137, "{out}");
    assert!(!out.contains("survived"));
    env.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_disk_fails_power_on_with_a_fault_and_leaks_nothing() {
    if skip() {
        return;
    }
    let env = Env::start().await;
    let vm = env.container("broken", &["echo", "never"], 128).await;
    let loops_before = attached_loops(&env.dir);
    std::fs::remove_file(
        env.dir
            .join("datastores/datastore1/broken/broken-flat.vmdk"),
    )
    .unwrap();
    let err = env.client.power_on(&vm).await.unwrap_err();
    assert_eq!(err.fault_type(), Some("FileNotFound"), "{err}");
    let s = env
        .client
        .property(&vm, "runtime.powerState")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.as_text(), Some("poweredOff"));
    assert_eq!(
        attached_loops(&env.dir),
        loops_before,
        "loop devices leaked"
    );
    assert!(
        !env.runtime.holds_resources(&vm),
        "sandbox resources leaked"
    );
    env.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_off_tears_down_a_running_vm() {
    if skip() {
        return;
    }
    let env = Env::start().await;
    let loops_before = attached_loops(&env.dir);
    let vm = env.container("sleeper", &["sleep", "600"], 128).await;
    env.client.power_on(&vm).await.unwrap();
    // The boot, layer and scratch disks get loop devices as the VM starts.
    let deadline = Instant::now() + Duration::from_secs(10);
    while attached_loops(&env.dir) < loops_before + 3 {
        assert!(
            Instant::now() < deadline,
            "the VM's disks were not attached"
        );
        // allow-sleep: poll interval of a deadline loop.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    env.client.power_off(&vm).await.unwrap();
    let s = env
        .client
        .property(&vm, "runtime.powerState")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.as_text(), Some("poweredOff"));
    assert!(
        !env.runtime.holds_resources(&vm),
        "cgroup or sandbox left behind"
    );
    // Auto-clear detaches the loop devices once the VM's mounts are gone.
    let deadline = Instant::now() + Duration::from_secs(5);
    while attached_loops(&env.dir) > loops_before && Instant::now() < deadline {
        // allow-sleep: poll interval of a deadline loop.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        attached_loops(&env.dir),
        loops_before,
        "loop devices leaked"
    );
    env.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instant_clone_forks_the_template_and_outlives_it() {
    if skip() {
        return;
    }
    let env = Env::start().await;
    let template = env.template(64).await;
    // A clone is its own VM: own pid namespace (the tether is pid 1), hostname,
    // network namespace, and it starts without a boot: the template's monitor forks.
    let script = "echo pid=$$; hostname; ls /sys/class/net; cat /proc/1/comm";
    let vm = env
        .instant_clone(&template, "ic1", &["sh", "-c", script])
        .await;
    env.wait_off(&vm).await;
    let (out, exit) = env.log("ic1").await;
    assert_eq!(exit["exit_code"], 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    let pid: u32 = lines[0].trim_start_matches("pid=").parse().unwrap();
    assert!((2..=5).contains(&pid), "{out}");
    assert_eq!(lines[1], "ic1");
    assert_eq!(lines[2], "lo");
    // Powering the template off does not take a running clone with it: the clone is in
    // its own cgroup (the template's is killed) and its pid namespace is not nested in
    // the template's.
    let vm = env
        .instant_clone(&template, "ic2", &["sh", "-c", "sleep 1; echo survived"])
        .await;
    env.client.power_off(&template).await.unwrap();
    env.wait_off(&vm).await;
    let (out, exit) = env.log("ic2").await;
    assert_eq!(out, "survived\n", "{exit}");
    assert_eq!(exit["exit_code"], 0);
    assert!(!env.runtime.holds_resources(&vm));
    env.done().await;
}
