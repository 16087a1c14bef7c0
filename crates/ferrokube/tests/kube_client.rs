#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The kube-rs client library against `ferrokube server`: create, read, update, patch,
//! delete, paginated lists and watch, as a Rust user of ferrokube would use it.

mod common;

use std::collections::BTreeMap;

use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

async fn client(s: &common::Server) -> Client {
    let kubeconfig = Kubeconfig::read_from(&s.kubeconfig).unwrap();
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

fn cm(name: &str, data: &[(&str, &str)]) -> ConfigMap {
    let mut c = ConfigMap::default();
    c.metadata.name = Some(name.into());
    c.data = Some(
        data.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    );
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_crud_pagination_and_watch() {
    let s = common::start();
    let client = client(&s).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");

    // CRUD.
    let created = cms
        .create(&PostParams::default(), &cm("rs", &[("a", "1")]))
        .await
        .unwrap();
    assert!(created.metadata.uid.is_some());
    let mut got = cms.get("rs").await.unwrap();
    got.data.as_mut().unwrap().insert("b".into(), "2".into());
    let replaced = cms
        .replace("rs", &PostParams::default(), &got)
        .await
        .unwrap();
    assert_eq!(replaced.data.as_ref().unwrap().len(), 2);
    let stale = cms
        .replace("rs", &PostParams::default(), &got)
        .await
        .unwrap_err();
    assert!(
        matches!(stale, kube::Error::Api(ref e) if e.code == 409),
        "{stale:?}"
    );
    let patched = cms
        .patch(
            "rs",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"data": {"c": "3"}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.data.unwrap()["c"], "3");
    let missing = cms.get("nope").await.unwrap_err();
    assert!(
        matches!(missing, kube::Error::Api(ref e) if e.code == 404 && e.reason == "NotFound"),
        "{missing:?}"
    );

    // A typed Deployment round-trips with upstream's defaults.
    let deployment: Deployment = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "httpd"}]}}}
    }))
    .unwrap();
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let d = deploys
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();
    assert_eq!(d.spec.unwrap().replicas, Some(1));

    // Paginated list.
    for i in 0..7 {
        cms.create(&PostParams::default(), &cm(&format!("page-{i}"), &[]))
            .await
            .unwrap();
    }
    let mut names = Vec::new();
    let mut params = ListParams::default().labels("").limit(3);
    loop {
        let page = cms.list(&params).await.unwrap();
        names.extend(
            page.items
                .iter()
                .filter_map(|c| c.metadata.name.clone())
                .filter(|n| n.starts_with("page-")),
        );
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => break,
        }
    }
    assert_eq!(
        names,
        (0..7).map(|i| format!("page-{i}")).collect::<Vec<_>>()
    );

    // Watch from the current resourceVersion sees a change.
    let rv = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = cms
        .watch(&WatchParams::default().timeout(10), &rv)
        .await
        .unwrap()
        .boxed();
    cms.create(&PostParams::default(), &cm("watched", &[]))
        .await
        .unwrap();
    cms.delete("watched", &DeleteParams::default())
        .await
        .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        match stream.next().await.expect("watch ended").unwrap() {
            WatchEvent::Added(c) => seen.push(format!("ADDED {}", c.metadata.name.unwrap())),
            WatchEvent::Deleted(c) => seen.push(format!("DELETED {}", c.metadata.name.unwrap())),
            WatchEvent::Modified(_) | WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("watch error {e:?}"),
        }
    }
    assert_eq!(seen, ["ADDED watched", "DELETED watched"]);
}
