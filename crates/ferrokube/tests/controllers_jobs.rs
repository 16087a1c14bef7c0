#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The Job, CronJob and TTL-after-finished controllers against a real API server,
//! judged with kubectl. No kubelet: the test sets pod phases where a kubelet would.

mod common;

use common::{controller_manager, start, wait_until, Server};

fn pods(s: &Server, job: &str) -> Vec<String> {
    s.ok(&[
        "get",
        "pods",
        "-l",
        &format!("job-name={job}"),
        "-o",
        "name",
    ])
    .lines()
    .map(str::to_string)
    .collect()
}

fn set_phase(s: &Server, pod: &str, phase: &str, exit_code: i32) {
    let patch = format!(
        r#"{{"status":{{"phase":"{phase}","containerStatuses":[{{"name":"c","image":"busybox","imageID":"","ready":false,"restartCount":0,"state":{{"terminated":{{"exitCode":{exit_code}}}}}}}]}}}}"#
    );
    let o = s.kubectl(&[
        "patch",
        pod,
        "--subresource=status",
        "--type=merge",
        "-p",
        &patch,
    ]);
    if !o.status.success() {
        // Say what the controllers did to the pod (a pod gone here is a finding).
        let events = s.kubectl(&["get", "events", "-o", "wide"]);
        let log = std::fs::read_dir(s.data_dir())
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n");
        panic!(
            "patching {pod}: {}\n--- events:\n{}\n--- logs:\n{log}",
            String::from_utf8_lossy(&o.stderr),
            String::from_utf8_lossy(&events.stdout)
        );
    }
}

fn jsonpath(s: &Server, what: &[&str], path: &str) -> String {
    let mut args = vec!["get"];
    args.extend_from_slice(what);
    let p = format!("jsonpath={path}");
    args.extend(["-o", &p]);
    s.ok(&args)
}

fn create(s: &Server, yaml: &str) {
    let out = s.kubectl_stdin(&["create", "-f", "-"], Some(yaml));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn jobs_run_to_completion_fail_on_backoff_and_expire() {
    let s = start();
    let _cm = controller_manager(
        &s,
        // The TTL controller deletes with foreground propagation: the garbage
        // collector finishes the deletion.
        &["--controllers=job,ttl-after-finished,garbagecollector"],
    );
    create(
        &s,
        "apiVersion: batch/v1\nkind: Job\nmetadata: {name: calc}\nspec:\n  completions: 3\n  parallelism: 2\n  ttlSecondsAfterFinished: 3\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: c, image: busybox}]\n",
    );
    wait_until("2 pods (parallelism)", 30, || pods(&s, "calc").len() == 2);
    let first = pods(&s, "calc");
    let finalizers = jsonpath(&s, &[&first[0]], "{.metadata.finalizers}");
    assert!(
        finalizers.contains("batch.kubernetes.io/job-tracking"),
        "{finalizers}"
    );
    // Each success is counted once and makes room for the next pod.
    set_phase(&s, &first[0], "Succeeded", 0);
    wait_until("succeeded 1", 30, || {
        jsonpath(&s, &["job", "calc"], "{.status.succeeded}") == "1"
    });
    wait_until("a third pod", 30, || pods(&s, "calc").len() == 3);
    let finalizers = jsonpath(&s, &[&first[0]], "{.metadata.finalizers}");
    assert!(!finalizers.contains("job-tracking"), "{finalizers}");
    for p in pods(&s, "calc") {
        if p != first[0] {
            set_phase(&s, &p, "Succeeded", 0);
        }
    }
    s.ok(&[
        "wait",
        "--for=condition=complete",
        "job/calc",
        "--timeout=30s",
    ]);
    assert_eq!(jsonpath(&s, &["job", "calc"], "{.status.succeeded}"), "3");
    let conds = jsonpath(&s, &["job", "calc"], "{.status.conditions[*].type}");
    assert_eq!(conds, "SuccessCriteriaMet Complete");
    let events = s.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=calc",
        "-o",
        "jsonpath={.items[*].reason}",
    ]);
    assert!(
        events.contains("SuccessfulCreate") && events.contains("Completed"),
        "{events}"
    );
    // ttlSecondsAfterFinished: the Job goes 3 s after it finished.
    wait_until("the finished job to expire", 30, || {
        s.kubectl(&["get", "job", "calc"]).status.code() == Some(1)
    });

    // backoffLimit 1: the second failure fails the Job.
    create(
        &s,
        "apiVersion: batch/v1\nkind: Job\nmetadata: {name: flaky}\nspec:\n  backoffLimit: 1\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: c, image: busybox}]\n",
    );
    wait_until("a pod", 30, || pods(&s, "flaky").len() == 1);
    let p1 = pods(&s, "flaky")[0].clone();
    set_phase(&s, &p1, "Failed", 1);
    // The replacement waits out the 10 s backoff.
    wait_until("a replacement pod", 40, || {
        pods(&s, "flaky").iter().any(|p| *p != p1)
    });
    let p2 = pods(&s, "flaky").into_iter().find(|p| *p != p1).unwrap();
    set_phase(&s, &p2, "Failed", 1);
    s.ok(&[
        "wait",
        "--for=condition=failed",
        "job/flaky",
        "--timeout=30s",
    ]);
    let reason = jsonpath(
        &s,
        &["job", "flaky"],
        "{.status.conditions[?(@.type==\"Failed\")].reason}",
    );
    assert_eq!(reason, "BackoffLimitExceeded");
    assert_eq!(jsonpath(&s, &["job", "flaky"], "{.status.failed}"), "2");

    // podFailurePolicy FailJob on exit code 42.
    create(
        &s,
        "apiVersion: batch/v1\nkind: Job\nmetadata: {name: strict}\nspec:\n  backoffLimit: 6\n  podFailurePolicy:\n    rules:\n    - action: FailJob\n      onExitCodes: {containerName: c, operator: In, values: [42]}\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: c, image: busybox}]\n",
    );
    wait_until("a pod", 30, || pods(&s, "strict").len() == 1);
    let p = pods(&s, "strict")[0].clone();
    set_phase(&s, &p, "Failed", 42);
    s.ok(&[
        "wait",
        "--for=condition=failed",
        "job/strict",
        "--timeout=30s",
    ]);
    let msg = jsonpath(
        &s,
        &["job", "strict"],
        "{.status.conditions[?(@.type==\"Failed\")].message}",
    );
    assert!(
        msg.contains("failed with exit code 42 matching FailJob rule at index 0"),
        "{msg}"
    );
}

#[test]
fn indexed_jobs_give_each_pod_its_index() {
    let s = start();
    let _cm = controller_manager(&s, &["--controllers=job"]);
    create(
        &s,
        "apiVersion: batch/v1\nkind: Job\nmetadata: {name: idx}\nspec:\n  completions: 3\n  parallelism: 3\n  completionMode: Indexed\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: c, image: busybox}]\n",
    );
    wait_until("3 pods", 30, || pods(&s, "idx").len() == 3);
    let indexes = s.ok(&[
        "get",
        "pods",
        "-l",
        "job-name=idx",
        "-o",
        "jsonpath={range .items[*]}{.metadata.annotations.batch\\.kubernetes\\.io/job-completion-index} {.spec.hostname} {.spec.containers[0].env[0].name}{\"\\n\"}{end}",
    ]);
    let mut lines: Vec<&str> = indexes.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        vec![
            "0 idx-0 JOB_COMPLETION_INDEX",
            "1 idx-1 JOB_COMPLETION_INDEX",
            "2 idx-2 JOB_COMPLETION_INDEX"
        ]
    );
    // Index 1 succeeds: completedIndexes says so; the others finish the Job.
    let one = s.ok(&[
        "get",
        "pods",
        "-l",
        "batch.kubernetes.io/job-completion-index=1",
        "-o",
        "name",
    ]);
    set_phase(&s, one.trim(), "Succeeded", 0);
    wait_until("completedIndexes 1", 30, || {
        jsonpath(&s, &["job", "idx"], "{.status.completedIndexes}") == "1"
    });
    for p in pods(&s, "idx") {
        if p != one.trim() {
            set_phase(&s, &p, "Succeeded", 0);
        }
    }
    s.ok(&[
        "wait",
        "--for=condition=complete",
        "job/idx",
        "--timeout=30s",
    ]);
    assert_eq!(
        jsonpath(&s, &["job", "idx"], "{.status.completedIndexes}"),
        "0-2"
    );
}

/// The pod (name) of an index of a Job, running or not, newest last.
fn index_pods(s: &Server, job: &str, index: i32) -> Vec<String> {
    s.ok(&[
        "get",
        "pods",
        "-l",
        &format!("job-name={job},batch.kubernetes.io/job-completion-index={index}"),
        "--sort-by=.metadata.creationTimestamp",
        "-o",
        "name",
    ])
    .lines()
    .map(str::to_string)
    .collect()
}

#[test]
fn indexed_jobs_with_backoff_limit_per_index() {
    let s = start();
    let _cm = controller_manager(&s, &["--controllers=job"]);
    let job = |name: &str, per_index: i32, extra: &str| {
        format!("apiVersion: batch/v1\nkind: Job\nmetadata: {{name: {name}}}\nspec:\n  completions: 3\n  parallelism: 3\n  completionMode: Indexed\n  backoffLimitPerIndex: {per_index}\n{extra}  template:\n    spec:\n      restartPolicy: Never\n      containers: [{{name: c, image: busybox}}]\n")
    };
    create(
        &s,
        &job(
            "retries",
            1,
            "  podFailurePolicy:\n    rules:\n    - action: FailIndex\n      onExitCodes: {operator: In, values: [42]}\n",
        ),
    );
    create(&s, &job("strict", 0, "  maxFailedIndexes: 0\n"));
    assert_eq!(
        jsonpath(&s, &["job", "retries"], "{.spec.backoffLimit}"),
        "2147483647"
    );
    wait_until("3 pods each", 30, || {
        pods(&s, "retries").len() == 3 && pods(&s, "strict").len() == 3
    });

    // maxFailedIndexes 0: the first failed index fails the Job, its other pods go.
    set_phase(&s, &index_pods(&s, "strict", 1)[0], "Failed", 1);
    s.ok(&[
        "wait",
        "--for=condition=failed",
        "job/strict",
        "--timeout=30s",
    ]);
    assert_eq!(
        jsonpath(
            &s,
            &["job", "strict"],
            "{.status.failedIndexes} {.status.conditions[?(@.type==\"Failed\")].reason}"
        ),
        "1 MaxFailedIndexesExceeded"
    );

    // Index 0 may fail once and is retried with its count; the second failure is its
    // last. Exit code 42 fails index 1 at once. Index 2 succeeds.
    let first = index_pods(&s, "retries", 0)[0].clone();
    set_phase(&s, &first, "Failed", 1);
    wait_until("index 0 retried", 40, || {
        index_pods(&s, "retries", 0).len() == 2
    });
    let second = index_pods(&s, "retries", 0)[1].clone();
    assert_eq!(
        jsonpath(
            &s,
            &[&second],
            "{.metadata.annotations.batch\\.kubernetes\\.io/job-index-failure-count}"
        ),
        "1"
    );
    set_phase(&s, &second, "Failed", 1);
    set_phase(&s, &index_pods(&s, "retries", 1)[0], "Failed", 42);
    wait_until("failedIndexes 0,1", 30, || {
        jsonpath(&s, &["job", "retries"], "{.status.failedIndexes}") == "0,1"
    });
    set_phase(&s, &index_pods(&s, "retries", 2)[0], "Succeeded", 0);
    s.ok(&[
        "wait",
        "--for=condition=failed",
        "job/retries",
        "--timeout=30s",
    ]);
    assert_eq!(
        jsonpath(&s, &["job", "retries"], "{.status.completedIndexes} {.status.failedIndexes} {.status.conditions[?(@.type==\"Failed\")].reason}"),
        "2 0,1 FailedIndexes"
    );
    assert_eq!(
        index_pods(&s, "retries", 0).len(),
        2,
        "a failed index was retried"
    );
    assert_eq!(
        index_pods(&s, "retries", 1).len(),
        1,
        "FailIndex was retried"
    );
}

#[test]
fn indexed_jobs_complete_early_by_success_policy() {
    let s = start();
    let _cm = controller_manager(&s, &["--controllers=job"]);
    create(
        &s,
        "apiVersion: batch/v1\nkind: Job\nmetadata: {name: leader}\nspec:\n  completions: 4\n  parallelism: 4\n  completionMode: Indexed\n  successPolicy:\n    rules:\n    - {succeededIndexes: \"0,1\", succeededCount: 2}\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: c, image: busybox}]\n",
    );
    wait_until("4 pods", 30, || pods(&s, "leader").len() == 4);
    set_phase(&s, &index_pods(&s, "leader", 2)[0], "Succeeded", 0);
    set_phase(&s, &index_pods(&s, "leader", 0)[0], "Succeeded", 0);
    wait_until("completedIndexes 0,2", 30, || {
        jsonpath(&s, &["job", "leader"], "{.status.completedIndexes}") == "0,2"
    });
    assert!(
        !jsonpath(&s, &["job", "leader"], "{.status.conditions[*].type}")
            .contains("SuccessCriteriaMet"),
        "index 2 is not in the rule"
    );
    set_phase(&s, &index_pods(&s, "leader", 1)[0], "Succeeded", 0);
    s.ok(&[
        "wait",
        "--for=condition=complete",
        "job/leader",
        "--timeout=30s",
    ]);
    assert_eq!(
        jsonpath(&s, &["job", "leader"], "{.status.conditions[?(@.type==\"Complete\")].reason}/{.status.conditions[?(@.type==\"SuccessCriteriaMet\")].message}"),
        "SuccessPolicy/Matched rules at index 0"
    );
    // Index 3's pod was removed, not left running.
    assert!(
        index_pods(&s, "leader", 3).is_empty()
            || jsonpath(&s, &[&index_pods(&s, "leader", 3)[0]], "{.status.phase}") != "Pending"
    );
}

#[test]
fn cronjobs_create_jobs_on_schedule_with_concurrency_policy() {
    // As upstream, a Job is named after its scheduled minute, so "@every 3s" makes at
    // most one Job a minute. Three CronJobs run side by side so the test waits for
    // one minute boundary, not three.
    let s = start();
    let _cm = controller_manager(&s, &["--controllers=cronjob"]);
    let cronjob = |name: &str, policy: &str, suspend: bool| {
        format!(
            "apiVersion: batch/v1\nkind: CronJob\nmetadata: {{name: {name}}}\nspec:\n  schedule: \"@every 3s\"\n  concurrencyPolicy: {policy}\n  suspend: {suspend}\n  jobTemplate:\n    metadata: {{labels: {{from: {name}}}}}\n    spec:\n      template:\n        spec:\n          restartPolicy: Never\n          containers: [{{name: c, image: busybox}}]\n"
        )
    };
    create(&s, &cronjob("forbid", "Forbid", false));
    create(&s, &cronjob("replace", "Replace", false));
    create(&s, &cronjob("idle", "Allow", true));
    // A daily schedule on Kathmandu's wall clock (UTC+05:45), due two minutes from now:
    // read as UTC it would not fire for hours.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let due = (now / 60 + 2) * 60;
    let wall = (due + 5 * 3600 + 45 * 60) % 86_400;
    let zoned = cronjob("zoned", "Allow", false)
        .replace(
            "\"@every 3s\"",
            &format!("\"{} {} * * *\"", wall % 3600 / 60, wall / 3600),
        )
        .replace(
            "  concurrencyPolicy",
            "  timeZone: Asia/Kathmandu\n  concurrencyPolicy",
        );
    create(&s, &zoned);
    let jobs = |s: &Server, from: &str| -> Vec<String> {
        s.ok(&["get", "jobs", "-l", &format!("from={from}"), "-o", "name"])
            .lines()
            .map(str::to_string)
            .collect()
    };
    wait_until("a job from each running cronjob", 30, || {
        jobs(&s, "forbid").len() == 1 && jobs(&s, "replace").len() == 1
    });
    let first = jobs(&s, "forbid")[0].clone();
    let replaced = jobs(&s, "replace")[0].clone();
    let owner = jsonpath(
        &s,
        &[&first],
        "{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}",
    );
    assert_eq!(owner, "CronJob/forbid");
    let stamp = jsonpath(
        &s,
        &[&first],
        "{.metadata.annotations.batch\\.kubernetes\\.io/cronjob-scheduled-timestamp}",
    );
    assert!(stamp.ends_with('Z'), "{stamp}");
    wait_until("status.active", 30, || {
        jsonpath(&s, &["cronjob", "forbid"], "{.status.active[0].name}")
            == first.trim_start_matches("job.batch/")
    });
    assert!(!jsonpath(&s, &["cronjob", "forbid"], "{.status.lastScheduleTime}").is_empty());
    // At the next minute: Forbid starts no second Job while the first runs and says
    // why; Replace replaces its running Job.
    wait_until("JobAlreadyActive", 75, || {
        s.ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=forbid",
            "-o",
            "jsonpath={.items[*].reason}",
        ])
        .contains("JobAlreadyActive")
    });
    assert_eq!(
        jobs(&s, "forbid"),
        vec![first],
        "Forbid started a second job"
    );
    wait_until("the job replaced", 30, || {
        let j = jobs(&s, "replace");
        j.len() == 1 && j[0] != replaced
    });
    // Suspended: no Jobs although a due time has passed; resumed, it runs the most
    // recent one.
    assert!(jobs(&s, "idle").is_empty(), "a suspended cronjob made jobs");
    s.ok(&[
        "patch",
        "cronjob",
        "idle",
        "--type=merge",
        "-p",
        r#"{"spec":{"suspend":false}}"#,
    ]);
    wait_until("a job once resumed", 30, || jobs(&s, "idle").len() == 1);
    wait_until("the zoned cronjob's job", 150, || {
        jobs(&s, "zoned") == vec![format!("job.batch/zoned-{}", due / 60)]
    });
}
