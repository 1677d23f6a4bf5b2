"""The fleet cast lives in tests/fleet_fixtures.py (a plugin, so browser tests share it)."""

from tests.fleet_fixtures import Installed, install

__all__ = ["Installed", "install"]
