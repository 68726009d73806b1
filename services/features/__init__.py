"""Live features: the one streaming feature computation per (symbol, interval).

Analytics' live state owns one :class:`~aiots.services.features.state.SymbolFeatures` per symbol
and interval, feeds it each closed bar once, and publishes the result on ``features:<interval>``;
the signals service reads those events, and the backtest drives the same object in-process.
"""
