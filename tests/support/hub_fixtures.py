"""Fixtures that run a real hub (uvicorn on free ports). Owned by the hub area."""
