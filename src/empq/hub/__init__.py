"""The hub: REST and WebSocket front of the queue, event fan-out and background tasks.

`empq.hub.app.create_app` builds the FastAPI app; `empq.hub.server.serve` runs it
on both ports. The moving parts live in `runtime.Hub`, which the app's lifespan
starts and stops.
"""
