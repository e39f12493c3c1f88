"""A job's requirements as its hash stores them: remembered, yet always the fresh text."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from empq.codec import requirements_json
from empq.models import HardwareRequirements, Requirements

#: A value other than the default for every field, nested hardware fields by their name.
OTHER_VALUES: dict[str, Any] = {
    "service_type": "comfyui",
    "component": "upscaler",
    "workflow": "txt2img",
    "models": ["sdxl"],
    "customer_isolation": "strict",
    "quality_level": "quality",
    "timeout_minutes": 2,
    "geographic_region": "eu",
    "compliance": ["soc2"],
    "cost_tier": "premium",
    "gpu_memory_gb": 24,
    "cpu_cores": 8,
    "ram_gb": 64,
    "storage_gb": 100,
}


def fresh(req: Requirements) -> str:
    return req.model_dump_json(exclude_defaults=True)


def test_every_field_of_the_requirements_reaches_the_text() -> None:
    # The memory is keyed by the fields' values: a field it left out of the key would
    # give two different requirements the same text. A new field fails here until it
    # is given a value above (and so, by whoever adds it, a place in the key).
    fields = set(Requirements.model_fields) - {"hardware"} | set(HardwareRequirements.model_fields)
    assert fields == set(OTHER_VALUES)
    base = requirements_json(Requirements())
    assert base == fresh(Requirements()) == "{}"
    for name, value in OTHER_VALUES.items():
        data = (
            {"hardware": {name: value}}
            if name in HardwareRequirements.model_fields
            else {name: value}
        )
        req = Requirements.model_validate(data)
        assert requirements_json(req) == fresh(req) != base, name


names = st.sampled_from(["a", "b", "c"])
requirements = st.builds(
    lambda svc, models, gpu, iso, timeout, comp, tier: Requirements.model_validate(
        {
            "service_type": svc,
            "models": models,
            "hardware": {"gpu_memory_gb": gpu},
            "customer_isolation": iso,
            "timeout_minutes": timeout,
            "compliance": comp,
            "cost_tier": tier,
        }
    ),
    st.one_of(st.none(), names),
    st.lists(names, max_size=3),  # order and repeats kept, as submitted
    st.one_of(st.none(), st.sampled_from([0, 8, 8.0, 24.5])),
    st.sampled_from(["none", "loose", "strict"]),
    st.sampled_from([30, 30.0, 2, 2.5]),
    st.lists(st.sampled_from(["soc2", "hipaa"]), max_size=2),
    st.one_of(st.none(), st.sampled_from(["economy", "premium"])),
)


@settings(max_examples=200, deadline=None)
@given(reqs=st.lists(requirements, min_size=1, max_size=20))
def test_remembered_text_is_the_fresh_text(reqs: list[Requirements]) -> None:
    for req in reqs:
        assert requirements_json(req) == fresh(req)
