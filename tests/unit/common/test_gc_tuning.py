"""freeze_startup_heap: what is alive at the call is out of the collector's generations (CPython's
own freeze count is the oracle); garbage made before it is collected first, not frozen."""

from __future__ import annotations

import gc
import weakref

from aiots.services.common.gc_tuning import freeze_startup_heap


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic GC frees it


def test_alive_objects_are_frozen_and_cyclic_garbage_is_collected_first() -> None:
    kept = _Node()
    dropped = _Node()
    gone = weakref.ref(dropped)
    del dropped
    before = gc.get_freeze_count()
    try:
        freeze_startup_heap()
        assert gone() is None  # collected by the call, not frozen
        assert gc.get_freeze_count() > before
        assert gc.is_tracked(kept) and not any(kept is o for o in gc.get_objects())  # not in a generation
    finally:
        gc.unfreeze()
