"""A custom connector: a worker that runs `shout` jobs by upper-casing `payload.text`.

Run a worker with it (the hub from `empq dev` or `empq hub` must be up):

    PYTHONPATH=examples EMPQ_CONNECTORS=custom_connector:ShoutConnector empq worker

then submit a job it serves:

    empq submit --type shout --service shout --payload '{"text": "hello"}' --watch
"""

from __future__ import annotations

import asyncio
from typing import Any

from empq import Connector, JobContext
from empq.connectors.base import ProgressReporter, invalid_payload


class ShoutConnector(Connector):
    """Serves `requirements.service_type == "shout"`."""

    name = "shout"
    services = ("shout",)

    async def process(self, job: JobContext, progress: ProgressReporter) -> dict[str, Any]:
        text = job.payload.get("text")
        if not isinstance(text, str):
            # fails at once, without retries: trying again cannot fix the payload
            raise invalid_payload(job, "payload.text must be a string")
        words = text.split()
        for n, _word in enumerate(words, 1):
            await asyncio.sleep(0.05)  # stands in for real work on a service
            await progress(100 * n / len(words), f"word {n}/{len(words)}")
        return {"text": text.upper(), "words": len(words), "output_files": []}
