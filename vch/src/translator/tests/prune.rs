//! `docker container prune`: stopped containers only, `until` and label filters.

use super::super::fakes::Rig;
use super::super::prune::candidates;
use crate::containers::Status;
use docker_api::Filters;

#[tokio::test(start_paused = true)]
async fn prune_takes_stopped_containers_matching_the_filters() {
    let rig = Rig::new();
    let running = rig.run("up", super::defaults()).await;
    let mut plan = super::plan(&super::super::naming::random_id(), "new", super::defaults());
    plan.meta.config.labels = Some([("tier".to_string(), "web".to_string())].into());
    let created = rig.t.create(plan).await.unwrap();
    let exited = rig.run("done", super::defaults()).await;
    rig.t.kill(&exited, None).await.unwrap();
    rig.until("done exits", |r| r.status(&exited) == Some(Status::Exited))
        .await;

    let now = chrono::Utc::now();
    let ids = |f: &[(&str, &str)]| -> Vec<String> {
        let mut v: Vec<String> =
            candidates(rig.t.all(), &Filters::from_pairs(f.iter().copied()), now)
                .unwrap()
                .into_iter()
                .map(|c| c.meta.id)
                .collect();
        v.sort();
        v
    };
    let mut stopped = vec![created.clone(), exited.clone()];
    stopped.sort();
    assert_eq!(ids(&[]), stopped);
    // Made just now: none is older than ten minutes.
    assert!(ids(&[("until", "10m")]).is_empty());
    assert_eq!(ids(&[("until", "2999-01-01T00:00:00Z")]), stopped);
    assert_eq!(ids(&[("label", "tier")]), vec![created.clone()]);
    assert_eq!(ids(&[("label", "tier=web")]), vec![created.clone()]);
    assert!(ids(&[("label", "tier=db")]).is_empty());
    assert_eq!(ids(&[("label!", "tier")]), vec![exited.clone()]);
    assert!(candidates(rig.t.all(), &Filters::from_pairs([("until", "soon")]), now).is_err());

    let removed = rig.t.prune_containers(&Filters::default()).await.unwrap();
    assert_eq!(removed.len(), 2);
    assert!(rig.t.get(&running).is_ok(), "a running container stays");
    assert!(rig.t.get(&created).is_err() && rig.t.get(&exited).is_err());
}
