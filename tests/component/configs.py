"""Configuration texts for in-process gateways."""

from __future__ import annotations

BASE_CONFIG = """
[health_check]
enabled = false
[[backends]]
name = "a"
url = "http://a.test"
type = "generic"
priority = 10
models = ["m"]
[backends.capabilities.m]
tools = true
[[backends]]
name = "b"
url = "http://b.test"
type = "vllm"
priority = 20
models = ["m"]
[backends.capabilities.m]
tools = true
"""
