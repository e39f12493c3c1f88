"""Test servers that speak real services' protocols (ComfyUI, Automatic1111)."""
