"""The hub: REST and WebSocket front of the queue, event fan-out and background tasks.

`routes/` holds the HTTP side (`routes.app.create_app` builds the FastAPI app),
`sockets/` the WebSocket protocol and its handlers, `services/` the background
services (event pump, tasks, stats, webhooks); the core beside them (`runtime.Hub`,
the registry, claims, dispatch) is what the app's lifespan starts and stops.
`server.serve` runs it on both ports. See docs/hub.md.
"""
