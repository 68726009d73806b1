"""BacktestService servicer: validation and proto plumbing only (the run is :mod:`api`).

Input files are resolved inside the configured data roots only: a path outside every root, or one
that does not exist, is INVALID_ARGUMENT naming the field (``bars[0]``...). A bad file is
INVALID_ARGUMENT naming the field, the file, the row and the column. The CPU-heavy run goes to a
worker thread; its progress is streamed as it happens.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import grpc
import yaml
from google.protobuf.json_format import MessageToDict, ParseDict
from pydantic import ValidationError
from ulid import ULID

from aiots.core.conventions import NS_PER_S, InvalidSymbol, normalize_ticker, ns_to_pb
from aiots.services.backtest.api import BacktestInputs, LoadedData, load, run_backtest
from aiots.services.backtest.readers import DataFileError
from aiots.services.backtest.runner import BacktestSettings
from aiots.services.backtest.store import BacktestStore, RunRecord
from aiots.services.common.audit import SUBJECT_HEADER
from aiots.services.common.errors import InvalidArgument, NotFound
from aiots.services.signals.config import SignalsConfig
from aiots.v1 import backtest_pb2, backtest_pb2_grpc

SERVICE_NAME = "aiots.v1.BacktestService"
MAX_FILES = 64
MAX_SYMBOLS = 50
DEFAULT_PAGE = 20
MAX_PAGE = 100
PROGRESS_POLL_S = 0.5


def add_to_server(servicer: BacktestServicer, server: grpc.aio.Server) -> None:
    backtest_pb2_grpc.add_BacktestServiceServicer_to_server(servicer, server)  # type: ignore[arg-type]


def resolve(field: str, value: str, roots: Sequence[Path]) -> Path:
    """The file ``value`` inside one of ``roots`` (relative: tried against each root in order)."""
    v = value.strip()
    if not v:
        raise InvalidArgument(field, "empty path")
    if "\x00" in v:
        raise InvalidArgument(field, "path contains a NUL byte")
    real_roots = [r.expanduser().resolve() for r in roots]
    cands = [Path(v)] if Path(v).is_absolute() else [r / v for r in real_roots]
    for c in cands:
        p = c.resolve()
        if any(p.is_relative_to(r) for r in real_roots) and p.is_file():
            return p
    where = ", ".join(str(r) for r in real_roots)
    raise InvalidArgument(field, f"{v!r} is not a file inside the data roots ({where})")


def _date(field: str, value: str) -> dt.date | None:
    if not value.strip():
        return None
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidArgument(field, f"{value!r} is not a date YYYY-MM-DD") from None


class BacktestServicer:
    def __init__(
        self,
        store: BacktestStore,
        data_roots: Sequence[Path],
        *,
        local_subject: str,
        max_concurrent: int,
        settings: BacktestSettings | None = None,
    ) -> None:
        self.store = store
        self.settings = settings or BacktestSettings()  # execution and yields (live_settings: the live terms)
        self.roots = list(data_roots)
        self.local_subject = local_subject
        self._sem = asyncio.Semaphore(max_concurrent)

    def _subject(self, context: grpc.aio.ServicerContext) -> str:
        md = dict(context.invocation_metadata() or ())
        sub = md.get(SUBJECT_HEADER, "")
        return sub if isinstance(sub, str) and sub else self.local_subject

    def validate(
        self, req: backtest_pb2.RunBacktestRequest
    ) -> tuple[BacktestInputs, SignalsConfig | None, dict[str, str]]:
        """The run's inputs; INVALID_ARGUMENT naming the field on anything wrong. Also path -> field."""
        if not req.bars:
            raise InvalidArgument(
                "bars", "at least one bar file is required (e.g. ohlcv/SPY_1m_2024-02-20_2024-05-17.csv)"
            )
        fields: dict[str, str] = {}
        lists: dict[str, list[str]] = {}
        for name in ("bars", "option_quotes", "chains"):
            items = list(getattr(req, name))
            if len(items) > MAX_FILES:
                raise InvalidArgument(name, f"at most {MAX_FILES} files, got {len(items)}")
            lists[name] = []
            for i, v in enumerate(items):
                p = str(resolve(f"{name}[{i}]", v, self.roots))
                fields[p] = f"{name}[{i}]"
                lists[name].append(p)
        if len(req.symbols) > MAX_SYMBOLS:
            raise InvalidArgument("symbols", f"at most {MAX_SYMBOLS}, got {len(req.symbols)}")
        syms: list[str] = []
        for i, s in enumerate(req.symbols):
            try:
                syms.append(normalize_ticker(s, f"symbols[{i}]"))
            except InvalidSymbol as exc:
                raise InvalidArgument(exc.field, f"{exc.value!r} is not a ticker ({exc.rule})") from None
        d0, d1 = _date("from_date", req.from_date), _date("to_date", req.to_date)
        if d0 and d1 and d0 > d1:
            raise InvalidArgument("from_date", f"{d0} is after to_date {d1}")
        cfg: SignalsConfig | None = None
        if req.config_yaml.strip():
            try:
                raw = yaml.safe_load(req.config_yaml)
                if not isinstance(raw, dict):
                    raise InvalidArgument("config_yaml", "must be a YAML mapping of strategies.yaml keys")
                cfg = SignalsConfig.model_validate(raw)
            except yaml.YAMLError as exc:
                raise InvalidArgument("config_yaml", f"not YAML: {str(exc).splitlines()[0]}") from None
            except ValidationError as exc:
                e = exc.errors()[0]
                raise InvalidArgument("config_yaml", f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}") from None
        inputs = BacktestInputs(
            tuple(lists["bars"]),
            tuple(lists["option_quotes"]),
            tuple(lists["chains"]),
            None,
            tuple(syms),
            d0,
            d1,
            int(req.seed),
            self.settings,
        )
        return inputs, cfg, fields

    def _load(self, inputs: BacktestInputs, cfg: SignalsConfig | None, fields: dict[str, str]) -> LoadedData:
        try:
            data = load(inputs)
        except DataFileError as exc:
            raise InvalidArgument(fields.get(exc.path, "bars"), str(exc)) from None
        except ValueError as exc:
            raise InvalidArgument("symbols" if "symbols" in str(exc) else "bars", str(exc)) from None
        if cfg is not None:
            data.config = cfg
        return data

    async def RunBacktest(
        self, request: backtest_pb2.RunBacktestRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[backtest_pb2.RunBacktestResponse]:
        inputs, cfg, fields = self.validate(request)
        owner = self._subject(context)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, int, int]] = asyncio.Queue()

        def progress(stage: str, done: int, total: int) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, (stage, done, total))

        def work() -> dict[str, Any]:
            progress("loading", 0, 1)
            data = self._load(inputs, cfg, fields)
            progress("loading", 1, 1)
            return run_backtest(inputs, progress, data=data)

        async with self._sem:
            t0 = time.monotonic()
            created = time.time_ns()
            task = asyncio.ensure_future(asyncio.to_thread(work))
            while True:
                try:
                    stage, done, total = await asyncio.wait_for(queue.get(), PROGRESS_POLL_S)
                    yield backtest_pb2.RunBacktestResponse(
                        progress=backtest_pb2.BacktestProgress(stage=stage, done=done, total=total)
                    )
                except TimeoutError:
                    pass
                if task.done() and queue.empty():
                    break
            report = task.result()  # raises the domain error of a bad input
        rec = RunRecord(
            str(ULID.from_timestamp(created / NS_PER_S)),
            created,
            owner,
            MessageToDict(request, preserving_proto_field_name=True),
            len(report["trades"]),
            time.monotonic() - t0,
            report,
        )
        await self.store.insert(rec)
        yield backtest_pb2.RunBacktestResponse(result=_run_pb(rec))

    async def GetBacktest(
        self, request: backtest_pb2.GetBacktestRequest, context: grpc.aio.ServicerContext
    ) -> backtest_pb2.GetBacktestResponse:
        rid = request.id.strip().upper()
        if not rid:
            raise InvalidArgument("id", "required: the id RunBacktest returned (a ULID such as 01JH3Z...)")
        if len(rid) != 26 or not rid.isalnum():
            raise InvalidArgument("id", f"{request.id!r} is not a run id (a 26-character ULID)")
        rec = await self.store.get(rid)
        if rec is None:
            raise NotFound(f"no backtest run {rid}")
        return backtest_pb2.GetBacktestResponse(run=_run_pb(rec))

    async def ListBacktests(
        self, request: backtest_pb2.ListBacktestsRequest, context: grpc.aio.ServicerContext
    ) -> backtest_pb2.ListBacktestsResponse:
        n = request.limit or DEFAULT_PAGE
        if not 1 <= n <= MAX_PAGE:
            raise InvalidArgument("limit", f"must be within 1..{MAX_PAGE} (0: {DEFAULT_PAGE}), got {request.limit}")
        return backtest_pb2.ListBacktestsResponse(runs=[_run_pb(r) for r in await self.store.list(n)])


def _run_pb(rec: RunRecord) -> backtest_pb2.BacktestRun:
    run = backtest_pb2.BacktestRun(id=rec.id, trades=rec.trades, elapsed_s=rec.elapsed_s)
    run.created_at.CopyFrom(ns_to_pb(rec.created_ns))  # type: ignore[arg-type]
    ParseDict(rec.request, run.request, ignore_unknown_fields=True)
    if rec.report is not None:
        run.report.update(rec.report)
    return run


ProgressFn = Callable[[str, int, int], None]
