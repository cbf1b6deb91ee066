use super::super::create::*;
use crate::images::manifest::ContainerConfig;
use docker_api::models::ContainerCreateBody;

fn image(entrypoint: Option<&[&str]>, cmd: Option<&[&str]>) -> ContainerConfig {
    let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    ContainerConfig {
        entrypoint: entrypoint.map(v),
        cmd: cmd.map(v),
        ..Default::default()
    }
}

fn body(entrypoint: Option<&[&str]>, cmd: Option<&[&str]>) -> ContainerCreateBody {
    let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    ContainerCreateBody {
        entrypoint: entrypoint.map(v),
        cmd: cmd.map(v),
        ..Default::default()
    }
}

#[test]
fn command_is_entrypoint_then_cmd() {
    let img = image(Some(&["/entry"]), Some(&["default"]));
    assert_eq!(
        command(&body(None, None), &img).unwrap(),
        ["/entry", "default"]
    );
    assert_eq!(
        command(&body(None, Some(&["x"])), &img).unwrap(),
        ["/entry", "x"]
    );
}

#[test]
fn an_entrypoint_given_without_cmd_drops_the_images_cmd() {
    let img = image(Some(&["/entry"]), Some(&["default"]));
    assert_eq!(
        command(&body(Some(&["/other"]), None), &img).unwrap(),
        ["/other"]
    );
}

#[test]
fn no_command_at_all_is_400() {
    let e = command(&body(None, None), &image(None, None)).unwrap_err();
    assert_eq!(
        crate::translator::error::to_docker(e).status().as_u16(),
        400
    );
}

#[test]
fn request_env_replaces_image_env_by_name() {
    let img = vec!["PATH=/bin".to_string(), "A=1".to_string()];
    let req = vec!["A=2".to_string(), "B=3".to_string()];
    assert_eq!(environment(&img, &req), ["PATH=/bin", "A=2", "B=3"]);
}

#[test]
fn memory_defaults_to_512mb_rounds_up_to_4mb_and_has_a_floor() {
    assert_eq!(memory_mb(0).unwrap(), 512);
    assert_eq!(memory_mb(100 << 20).unwrap(), 100);
    assert_eq!(memory_mb(101 << 20).unwrap(), 104);
    assert_eq!(memory_mb(6 << 20).unwrap(), 8);
    assert!(memory_mb(5 << 20).is_err());
}

#[test]
fn cpus_round_up() {
    assert_eq!(cpus(0), 1);
    assert_eq!(cpus(500_000_000), 1);
    assert_eq!(cpus(1_000_000_001), 2);
    assert_eq!(cpus(4_000_000_000), 4);
}
