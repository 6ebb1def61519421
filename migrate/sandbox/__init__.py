"""The embedded Cloudflare API emulator: `Sandbox(seed=...)`, seeds in `seeds.py`."""

from .server import Sandbox
from .state import SeedError

__all__ = ["Sandbox", "SeedError"]
