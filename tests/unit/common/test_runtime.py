"""The runtime's typed sharing: a missing bus is an error naming who needs it; components are
shared one instance per class, and a lookup never returns an object of another class."""

from __future__ import annotations

import pytest

from aiots.services.bus.in_process import InProcessBus
from aiots.services.common.runtime import FeedSpec, Runtime
from aiots.services.common.settings import Settings


class Book:
    pass


class OtherBook(Book):
    pass


def test_need_bus_names_the_caller() -> None:
    rt = Runtime(settings=Settings())
    with pytest.raises(RuntimeError, match="signals needs an event bus"):
        rt.need_bus("signals")
    rt.bus = InProcessBus(rt.settings.redis)
    assert rt.need_bus("signals") is rt.bus


def test_components_one_per_class() -> None:
    rt = Runtime(settings=Settings())
    assert rt.component(Book) is None
    b = rt.register(Book())
    assert rt.component(Book) is b and rt.component(OtherBook) is None
    o = rt.register(OtherBook())
    assert rt.component(OtherBook) is o and rt.component(Book) is b
    assert rt.feed == FeedSpec() and rt.feed.kind == "simulator"
