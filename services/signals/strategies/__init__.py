"""Strategies: small classes that turn a feature snapshot into an :class:`Idea` (or nothing)."""

from aiots.services.signals.strategies.base import Strategy, all_strategies

__all__ = ["Strategy", "all_strategies"]
