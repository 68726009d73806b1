"""Market simulator (the embedded default without DATABENTO_API_KEY), emitting real DBN records.

Split by job: :mod:`.model` (prices, volatility, volume, the listed chain), :mod:`.clock` (market
time inside NYSE sessions only), :mod:`.records` (DBN records), :mod:`.history` (seeded bars and
ATM IV) and :mod:`.runner` (the source that feeds a pipeline; its SQL is in
``aiots.services.ingestion.store``). See docs/market-conventions.md.
"""

from aiots.services.ingestion.sources.simulator.clock import ClockStatus, SessionClock, describe_market
from aiots.services.ingestion.sources.simulator.history import history_batches
from aiots.services.ingestion.sources.simulator.model import PROFILES, Contract, UnderlyingState, volume_curve
from aiots.services.ingestion.sources.simulator.records import MarketSimulator
from aiots.services.ingestion.sources.simulator.runner import SimulatorSource, seed_history

__all__ = [
    "PROFILES", "ClockStatus", "Contract", "MarketSimulator", "SessionClock", "SimulatorSource", "UnderlyingState",
    "describe_market", "history_batches", "seed_history", "volume_curve",
]  # fmt: skip
