"""The hub's background services: the event pump, tasks, stats and webhooks."""
