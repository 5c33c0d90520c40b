"""livecoach: talk balance, silence and wait time for live 1:1 coaching calls."""

__version__ = "0.1.0"
