"""The hub's WebSocket side: the endpoint, the protocol's handlers, who may send what."""
