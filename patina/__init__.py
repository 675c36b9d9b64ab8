"""patina: archive-scale restoration of old photographs."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("patina")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0+unknown"
