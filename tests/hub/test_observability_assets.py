"""deploy/grafana/empq.json and deploy/prometheus/alerts.yaml name only metrics that exist.

Every metric in every dashboard query and alert expression must be in the `/metrics`
of a live hub (or, for `empq_worker_*`, of a live worker) after a few jobs, with the
labels the expression groups or filters by.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.hub_fixtures import HubHandle
from tests.worker.conftest import running_worker, submit, wait_for_job

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "empq.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yaml"

#: Series Prometheus makes itself, not any exporter.
BUILTIN = {"up"}
_NAME = re.compile(r"\b((?:empq|process|python)_[a-zA-Z0-9_]+)\b")
_LABELS = re.compile(r"\b(?:by|on)\s*\(([^)]*)\)")
_MATCHERS = re.compile(r"\{([^}]*)\}")


def dashboard_queries() -> list[str]:
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("expr"), str):
                found.append(node["expr"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(json.loads(DASHBOARD.read_text()))
    return found


def alert_expressions() -> list[str]:
    rules = [r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]]
    return [r["expr"] for r in rules]


_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}


def exposed(text: str) -> dict[str, set[str] | None]:
    """Series name -> label names seen, from a Prometheus text exposition.

    A labelled family with no series yet (say, hand-backs before any) is there by its
    HELP line: its names map to None (labels unknown).
    """
    names: dict[str, set[str] | None] = {}
    for family in text_string_to_metric_families(text):
        if not family.samples:
            for suffix in _SUFFIXES.get(family.type, ("",)):
                names.setdefault(family.name + suffix, None)
        for sample in family.samples:
            labels = names.get(sample.name) or set()
            labels.update(sample.labels)
            names[sample.name] = labels
    return names


def test_the_dashboard_and_rules_are_what_operators_need() -> None:
    queries, rules = dashboard_queries(), alert_expressions()
    assert len(queries) >= 20
    text = "\n".join(rules)
    for needed in (
        "empq_unrunnable_jobs",  # a service's queue growing with no capable worker
        "empq_jobs_overdue",  # jobs stuck past their timeout
        'outcome=~"failed|timeout"',  # failure ratio by type
        "empq_ready",  # a hub not ready
        "empq_webhook_failures_total",  # webhook deliveries failing
    ):
        assert needed in text


async def test_every_metric_named_exists_in_a_live_hub_and_worker(hub: HubHandle) -> None:
    async with running_worker(hub.ws_url) as worker, hub.client() as http:
        await wait_for_job(http, await submit(http))
        await wait_for_job(http, await submit(http, payload={"fail": True}, max_retries=0))
        # a failure that will be retried (after the back-off: not in this test)
        await wait_for_job(http, await submit(http, payload={"fail": True}, max_retries=1))
        await submit(http, type="clip", requirements={"service_type": "video"})  # unrunnable
        hub_text = (await http.get("/metrics")).text
        worker_text = generate_latest(worker.metrics.registry).decode()
    names = {**exposed(worker_text), **exposed(hub_text)}
    # the jobs just run are in it, by type and outcome
    finished = {
        (s.labels["type"], s.labels["outcome"]): s.value
        for f in text_string_to_metric_families(hub_text)
        for s in f.samples
        if s.name == "empq_jobs_finished_total"
    }
    assert finished == {("sim", "completed"): 1.0, ("sim", "failed"): 1.0}
    problems = []
    for expr in [*dashboard_queries(), *alert_expressions()]:
        named = set(_NAME.findall(expr)) - BUILTIN
        for name in sorted(named - set(names)):
            problems.append(f"{name} is not exposed (in {expr!r})")
        known = [names[n] for n in named if names.get(n) is not None]
        if len(known) < len([n for n in named if n in names]):
            continue  # a family with no series yet: its labels cannot be checked
        grouped = {label.strip() for group in _LABELS.findall(expr) for label in group.split(",")}
        matched = {
            re.split(r"[=!~]", m, maxsplit=1)[0].strip()
            for block in _MATCHERS.findall(expr)
            for m in block.split(",")
            if "=" in m
        }
        wanted = (grouped | matched) - {"", "job", "instance", "le"}
        have: set[str] = set().union(*known)  # type: ignore[arg-type]
        if not wanted <= have:
            problems.append(f"labels {sorted(wanted - have)} are on no metric of {expr!r}")
    assert not problems, "\n".join(problems)
