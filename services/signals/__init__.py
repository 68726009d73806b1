"""Signals: short-term option trade ideas with entry, target, stop and confidence.

Path of a signal: closed 1m bar on the bus -> :mod:`features` (O(1) streaming indicators) ->
:mod:`strategies` (rules that fire, with reasons) -> :mod:`selection` (contract, target, stop,
confidence from the core's American pricer) -> :mod:`engine` (dedup, persistence, publish) ->
:mod:`fanout` (every replica's subscribers) -> :mod:`service` (gRPC stream).
"""
