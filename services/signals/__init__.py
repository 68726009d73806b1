"""Signals: short-term option trade ideas with entry, target, stop and confidence.

Path of a signal: closed 1m bar -> analytics' live state, the one owner of the features
(:mod:`aiots.services.features`, O(1) streaming indicators) -> ``features:1m`` on the bus ->
:mod:`strategies` (rules that fire, with reasons) -> :mod:`selection` (contract, target, stop,
confidence from the core's American pricer) -> :mod:`engine` (dedup, persistence, publish) ->
:mod:`fanout` (every replica's subscribers) -> :mod:`service` (gRPC stream).
"""
