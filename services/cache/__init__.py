"""Cache service: latest price snapshots, cached analytics values, WatchPrices."""
