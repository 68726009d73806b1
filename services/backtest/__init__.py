"""Backtesting: replay real market data through the live signal engine with honest fills.

The same :class:`aiots.services.signals.engine.SignalEngine` that runs live makes every
decision here; this package only supplies a replayed clock, option quotes (real, or modelled
where none exist), the shared execution model (:mod:`aiots.core.execution`) and statistics.
"""
