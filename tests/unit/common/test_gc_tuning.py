"""freeze_startup_heap: what is alive at the call is out of the collector's generations (CPython's
own freeze count is the oracle); garbage made before it is collected first, not frozen.
frozen_heap: the same for a block, undone after it; garbage made inside is still collected; a heap
already frozen is left as it is."""

from __future__ import annotations

import gc
import weakref

import pytest

from aiots.services.common.gc_tuning import freeze_startup_heap, frozen_heap


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


def _in_generations(x: object) -> bool:
    return any(x is o for o in gc.get_objects())


def test_frozen_heap_freezes_for_the_block_and_collects_what_the_block_drops() -> None:
    gc.unfreeze()  # (a frozen heap left by another test would make the block a no-op)
    kept = _Node()
    with frozen_heap():
        assert gc.get_freeze_count() > 0 and not _in_generations(kept)
        dropped = _Node()
        gone = weakref.ref(dropped)
        del dropped
        gc.collect()
        assert gone() is None  # made inside the block: still the collector's
    assert gc.get_freeze_count() == 0 and _in_generations(kept)


def test_frozen_heap_leaves_an_already_frozen_heap_alone() -> None:
    kept = _Node()
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with frozen_heap():
            pass
        assert gc.get_freeze_count() == frozen and not _in_generations(kept)  # not unfrozen by the block
    finally:
        gc.unfreeze()


def test_frozen_heap_unfreezes_when_the_block_raises() -> None:
    gc.unfreeze()
    with pytest.raises(ValueError, match="boom"), frozen_heap():
        raise ValueError("boom")
    assert gc.get_freeze_count() == 0
