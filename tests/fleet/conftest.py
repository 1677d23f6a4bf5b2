"""The fleet cast lives in tests/fleet_fixtures.py (a plugin, so browser tests share it)."""

from tests.fleet_fixtures import Installed, install, install_with_readings

__all__ = ["Installed", "install", "install_with_readings"]
