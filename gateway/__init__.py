"""Estate gateway: IoT security and facilities monitoring for one site."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("estate-gateway")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
