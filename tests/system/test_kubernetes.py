"""deploy/kubernetes: every manifest valid for a current Kubernetes (`kubernetes-validate
--strict`, installed by containers/setup.sh), and the deployment choices the docs rely on
are in them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.system.containers import ROOT

pytestmark = pytest.mark.system

KUBE = ROOT / "deploy" / "kubernetes"


def _validator() -> str:
    for candidate in (
        shutil.which("kubernetes-validate"),
        "/opt/containers-venv/bin/kubernetes-validate",
    ):
        if candidate and Path(candidate).exists():
            return candidate
    pytest.skip("kubernetes-validate is not installed (containers/setup.sh installs it)")


def _kustomization() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((KUBE / "kustomization.yaml").read_text())
    return loaded


def _resources() -> dict[str, dict[str, Any]]:
    """Each manifest the kustomization lists, by its kind/name."""
    found = {}
    for name in _kustomization()["resources"]:
        doc = yaml.safe_load((KUBE / name).read_text())
        found[f"{doc['kind']}/{doc['metadata']['name']}"] = doc
    return found


def test_every_manifest_is_valid_for_a_current_kubernetes_in_strict_mode() -> None:
    listed = sorted(_kustomization()["resources"])
    present = sorted(p.name for p in KUBE.glob("*.yaml") if p.name != "kustomization.yaml")
    assert listed == present, "the kustomization must list every manifest in the folder"
    done = subprocess.run(
        [_validator(), "--strict", *(str(KUBE / name) for name in listed)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(" passed for resource ") == len(listed), done.stdout


def test_hubs_are_two_probed_replicas_that_outlive_their_drain() -> None:
    hub = _resources()["Deployment/empq-hub"]
    assert hub["spec"]["replicas"] == 2
    pod = hub["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] > pause + 30
    assert pod["securityContext"]["runAsNonRoot"] is True
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    claim = next(v for v in pod["volumes"] if v["name"] == "artifacts")
    pvc = _resources()[f"PersistentVolumeClaim/{claim['persistentVolumeClaim']['claimName']}"]
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"], "every hub serves every artifact"
    settings = _resources()["ConfigMap/empq-settings"]["data"]
    assert mounts["artifacts"] == settings["EMPQ_ARTIFACT_DIR"]


def test_workers_take_a_gpu_and_their_token_from_a_secret_and_hubs_keep_one_up() -> None:
    res = _resources()
    worker = res["Deployment/empq-worker"]["spec"]["template"]["spec"]
    (container,) = worker["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    token = next(e for e in container["env"] if e["name"] == "EMPQ_WORKER_TOKEN")
    ref = token["valueFrom"]["secretKeyRef"]
    assert ref["key"] in res[f"Secret/{ref['name']}"]["stringData"]
    grace = int(res["ConfigMap/empq-settings"]["data"]["EMPQ_SHUTDOWN_GRACE"])
    assert worker["terminationGracePeriodSeconds"] > grace
    assert res["PodDisruptionBudget/empq-hub"]["spec"]["minAvailable"] == 1
    ingress = res["Ingress/empq"]["metadata"]["annotations"]
    assert int(ingress["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600
