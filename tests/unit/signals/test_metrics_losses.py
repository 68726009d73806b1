"""Losses reach the P&L histogram: the recorded value is the return ratio (histograms refuse
negative values, which is how every losing exit used to vanish from the old percent histogram).

Oracle: the OpenTelemetry SDK's own histogram aggregation read back through an in-memory reader.
"""

from __future__ import annotations

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from aiots.services.common.telemetry import RETURN_RATIO_BUCKETS
from aiots.services.signals.stats import return_ratio


def _histogram(values: list[float]) -> tuple[int, list[int]]:
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("test")
    h = meter.create_histogram("x", explicit_bucket_boundaries_advisory=RETURN_RATIO_BUCKETS)
    for v in values:
        h.record(v)
    data = reader.get_metrics_data()
    point = data.resource_metrics[0].scope_metrics[0].metrics[0].data.data_points[0]
    return point.count, list(point.bucket_counts)


def test_losses_are_recorded_below_one() -> None:
    pnl = [-5.8, -4.6, 7.2, -100.0]
    count, buckets = _histogram([return_ratio(p) for p in pnl])
    assert count == 4  # nothing dropped
    # buckets: (<=0.5, <=0.8, <=0.9, <=0.95, <=0.98, <=1.0, <=1.02, <=1.05, <=1.1, ...)
    assert buckets[0] == 1  # the total loss (ratio 0)
    assert buckets[3] == 1  # -5.8 % -> 0.942
    assert buckets[4] == 1  # -4.6 % -> 0.954
    assert buckets[8] == 1  # +7.2 % -> 1.072


def test_negative_percentages_would_be_dropped() -> None:
    count, _ = _histogram([-5.8, 7.2])
    assert count == 1  # the SDK refuses the negative value: why losses are recorded as ratios
