"""The official Python client (`pip install kubernetes`) against `ferrokube server`:
create/read/update/delete, paginated lists and watch, as issue #3 asks.

Run by hack/test.sh after the Rust tests (the binary is target/debug/ferrokube)."""
import os
import socket
import subprocess
import tempfile
import threading
import time

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("FERROKUBE_BIN", os.path.join(ROOT, "target", "debug", "ferrokube"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def api():
    data = tempfile.mkdtemp(prefix="ferrokube-py-")
    proc = subprocess.Popen(
        # The API is what is tested here: no node (containers would outlive the test).
        [BINARY, "server", "--data-dir", data, "--secure-port", str(free_port()),
         "--disable-agent"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    deadline = time.time() + 30
    kubeconfig = None
    while kubeconfig is None:
        assert time.time() < deadline, "server did not start"
        line = proc.stdout.readline()
        assert line, "server exited"
        if "export KUBECONFIG=" in line:
            kubeconfig = line.strip().split("KUBECONFIG=", 1)[1]
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    config.load_kube_config(config_file=kubeconfig)
    yield client.ApiClient()
    proc.terminate()
    proc.wait(timeout=10)


def test_crud(api):
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="py")))
    cm = core.create_namespaced_config_map("py", client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="settings", labels={"app": "py"}), data={"a": "1"}))
    assert cm.metadata.uid and cm.metadata.resource_version
    got = core.read_namespaced_config_map("settings", "py")
    assert got.data == {"a": "1"}
    got.data["b"] = "2"
    updated = core.replace_namespaced_config_map("settings", "py", got)
    assert updated.data == {"a": "1", "b": "2"}
    assert int(updated.metadata.resource_version) > int(cm.metadata.resource_version)
    patched = core.patch_namespaced_config_map("settings", "py", {"data": {"c": "3"}})
    assert patched.data["c"] == "3"
    # A stale resourceVersion is a 409 Conflict.
    got.data["d"] = "4"
    with pytest.raises(ApiException) as e:
        core.replace_namespaced_config_map("settings", "py", got)
    assert e.value.status == 409
    core.delete_namespaced_config_map("settings", "py")
    with pytest.raises(ApiException) as e:
        core.read_namespaced_config_map("settings", "py")
    assert e.value.status == 404
    apps = client.AppsV1Api(api)
    dep = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1DeploymentSpec(
            replicas=2,
            selector=client.V1LabelSelector(match_labels={"app": "web"}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"app": "web"}),
                spec=client.V1PodSpec(containers=[client.V1Container(name="web", image="httpd")]))))
    created = apps.create_namespaced_deployment("py", dep)
    assert created.spec.strategy.type == "RollingUpdate"
    scaled = apps.patch_namespaced_deployment_scale("web", "py", {"spec": {"replicas": 4}})
    assert scaled.spec.replicas == 4


def test_paginated_list(api):
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="pages")))
    for i in range(12):
        core.create_namespaced_config_map("pages", client.V1ConfigMap(metadata=client.V1ObjectMeta(name=f"cm-{i:02d}")))
    names, token = [], None
    while True:
        page = core.list_namespaced_config_map("pages", limit=5, _continue=token)
        names += [c.metadata.name for c in page.items]
        token = page.metadata._continue
        if not token:
            break
        assert page.metadata.remaining_item_count is not None
    # The root CA publisher adds kube-root-ca.crt to every namespace, as upstream.
    assert [n for n in names if n.startswith("cm-")] == [f"cm-{i:02d}" for i in range(12)]
    assert len(names) == len(set(names)), names


def test_watch(api):
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="watched")))
    start = core.list_namespaced_config_map("watched").metadata.resource_version

    def writer():
        time.sleep(0.5)
        core.create_namespaced_config_map("watched", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="w1")))
        core.patch_namespaced_config_map("w1", "watched", {"data": {"x": "y"}})
        core.delete_namespaced_config_map("w1", "watched")

    threading.Thread(target=writer).start()
    seen = []
    w = watch.Watch()
    # Only w1: the root CA publisher adds kube-root-ca.crt to the namespace meanwhile.
    for event in w.stream(core.list_namespaced_config_map, "watched", resource_version=start,
                          field_selector="metadata.name=w1", timeout_seconds=10):
        seen.append((event["type"], event["object"].metadata.name))
        if len(seen) == 3:
            w.stop()
    assert seen == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")]
