"""``gateway demo``: the gateway on a simulated estate, with embedded defaults."""

from gateway.demo.run import DemoError, run_demo

__all__ = ["DemoError", "run_demo"]
