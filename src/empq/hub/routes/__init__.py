"""The hub's HTTP side: the FastAPI app, its REST routes and their error shape."""
