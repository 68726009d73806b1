"""Local Databento gateways for tests: the REAL databento client talks to these, unchanged.

- :class:`FakeHistorical`: HTTPS (self-signed cert with SAN IP:127.0.0.1, made with
  ``cryptography``) serving ``/v0/timeseries.get_range`` (zstd DBN v3 of the stored records in
  [start, end) for the requested symbols/schema), ``/v0/metadata.get_cost`` and
  ``/v0/symbology.resolve``; HTTP Basic auth with the key as user name.
- :class:`FakeLive`: the LSG text protocol (greeting, CRAM challenge, auth, subscriptions,
  start_session) then a DBN stream (Metadata with schema None, SymbolMappingMsgs, records,
  heartbeats). Each connection plays the next :class:`LivePlan` (of its dataset when
  ``plans_by_dataset`` names it): its records, then ``eof`` (clean FIN), ``rst`` (abrupt reset,
  SO_LINGER 0) or ``hang`` (silence). Parent symbology (``stype_in=parent``, ``AAPL.OPT``) is
  answered like the real gateway: one SymbolMappingMsg per child contract (``parents``), whose
  ``stype_out_symbol`` is the contract's raw OSI symbol.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import json
import socket
import ssl
import struct
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs

import databento_dbn as dbn
import zstandard
from aiohttp import web

NS = 1_000_000_000
SCHEMA_RTYPES = {"trades": (0,), "tbbo": (1,), "mbp-1": (1,), "ohlcv-1m": (33,), "ohlcv-1s": (32,)}


def make_cert(directory: Path) -> tuple[Path, Path]:
    """Self-signed cert + key for 127.0.0.1 (SAN IP), PEM files."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    c, k = directory / "cert.pem", directory / "key.pem"
    c.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    k.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return c, k


def metadata_bytes(
    dataset: str, start_ns: int, schema: Any, symbols: list[str], ids: dict[str, int], end_ns: int | None = None
) -> bytes:
    d0 = dt.datetime.fromtimestamp(start_ns / NS, dt.UTC).date()
    d1 = d0 + dt.timedelta(days=1)
    mappings = (
        [
            SimpleNamespace(raw_symbol=s, intervals=[SimpleNamespace(start_date=d0, end_date=d1, symbol=str(ids[s]))])
            for s in symbols
        ]
        if schema is not None
        else []
    )
    m = dbn.Metadata(
        dataset=dataset,
        start=start_ns,
        end=end_ns,
        schema=schema,
        stype_in=dbn.SType.RAW_SYMBOL if schema is not None else None,
        stype_out=dbn.SType.INSTRUMENT_ID,
        symbols=symbols,
        partial=[],
        not_found=[],
        mappings=mappings,
    )
    return bytes(m)


class FakeHistorical:
    """HTTPS Historical gateway over an in-memory list of records {(symbol) -> [records]}."""

    def __init__(
        self,
        key: str,
        cert: Path,
        keyfile: Path,
        dataset: str,
        ids: dict[str, int],
        records: list[Any],
        cost_usd: float = 1.5,
    ) -> None:
        self.key = key
        self.dataset = dataset
        self.ids = ids
        self.records = records
        self.cost_usd = cost_usd
        self.requests: list[tuple[str, dict[str, str]]] = []
        self._ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._ssl.load_cert_chain(cert, keyfile)
        self.port = 0
        self._runner: web.AppRunner | None = None

    def _auth(self, req: web.Request) -> bool:
        h = req.headers.get("Authorization", "")
        return h == "Basic " + base64.b64encode(f"{self.key}:".encode()).decode()

    async def _form(self, req: web.Request) -> dict[str, str]:
        body = await req.text()
        return {k: v[0] for k, v in parse_qs(body).items()}

    async def get_range(self, req: web.Request) -> web.StreamResponse:
        if not self._auth(req):
            return web.json_response({"detail": "Authentication failed."}, status=401)
        f = await self._form(req)
        self.requests.append(("get_range", f))
        start, end = _ns(f["start"]), _ns(f.get("end")) if f.get("end") else 2**62
        syms = f["symbols"].split(",")
        ids = {self.ids[s] for s in syms if s in self.ids}
        rtypes = SCHEMA_RTYPES[f["schema"]]
        recs = [
            r for r in self.records if int(r.rtype) in rtypes and r.instrument_id in ids and start <= r.ts_event < end
        ]
        body = metadata_bytes(self.dataset, start, dbn.Schema.from_str(f["schema"]), syms, self.ids, end)
        body += b"".join(bytes(r) for r in recs)
        return web.Response(body=zstandard.ZstdCompressor().compress(body), content_type="application/octet-stream")

    async def get_cost(self, req: web.Request) -> web.StreamResponse:
        if not self._auth(req):
            return web.json_response({"detail": "Authentication failed."}, status=401)
        self.requests.append(("get_cost", await self._form(req)))
        return web.json_response(self.cost_usd)

    async def resolve(self, req: web.Request) -> web.StreamResponse:
        f = await self._form(req)
        self.requests.append(("resolve", f))
        syms = f["symbols"].split(",")
        return web.json_response(
            {
                "result": {
                    s: [{"d0": f["start_date"], "d1": f.get("end_date") or f["start_date"], "s": str(self.ids[s])}]
                    for s in syms
                    if s in self.ids
                },
                "symbols": syms,
                "stype_in": f["stype_in"],
                "stype_out": f["stype_out"],
                "start_date": f["start_date"],
                "end_date": f.get("end_date"),
                "partial": [],
                "not_found": [s for s in syms if s not in self.ids],
                "message": "OK",
                "status": 0,
            }
        )

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/v0/timeseries.get_range", self.get_range)
        app.router.add_post("/v0/metadata.get_cost", self.get_cost)
        app.router.add_post("/v0/symbology.resolve", self.resolve)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._ssl)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"127.0.0.1:{self.port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def _ns(s: str) -> int:
    if s.isdigit():
        return int(s)
    import pandas as pd

    return int(pd.Timestamp(s).tz_localize("UTC").value if pd.Timestamp(s).tzinfo is None else pd.Timestamp(s).value)


@dataclass
class LivePlan:
    """What one live connection sends: records, then 'eof' | 'rst' | 'hang'."""

    records: list[Any]
    ending: str = "eof"
    heartbeats: int = 1


@dataclass
class FakeLive:
    """LSG gateway in its own thread/loop (the Live client runs its own loop thread too)."""

    key: str
    dataset: str
    ids: dict[str, int]
    plans: list[LivePlan]
    port: int = 0
    connections: int = 0
    auth_failures: int = 0
    subscriptions: list[str] = field(default_factory=list)
    parents: dict[str, dict[str, int]] = field(default_factory=dict)  # "AAPL.OPT" -> {OSI symbol: id}
    plans_by_dataset: dict[str, list[LivePlan]] = field(default_factory=dict)
    datasets: list[str] = field(default_factory=list)  # dataset of each authenticated connection
    _loop: asyncio.AbstractEventLoop | None = None
    _server: Any = None
    _closing: asyncio.Event | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        from databento.common.cram import get_challenge_response

        cram = "abcdefghijklmnopqrstuvwxyzABCDEF"
        writer.write(b"lsg_version=0.4.2\n" + f"cram={cram}\n".encode())
        await writer.drain()
        line = (await reader.readline()).decode()
        fields = dict(kv.split("=", 1) for kv in line.strip().split("|"))
        if fields.get("auth") != get_challenge_response(cram, self.key):
            self.auth_failures += 1
            writer.write(b"success=0|error=Authentication failed.\n")
            await writer.drain()
            writer.close()
            return
        dataset = fields.get("dataset", self.dataset)
        self.datasets.append(dataset)
        writer.write(b"success=1|session_id=1\n")
        await writer.drain()
        symbols: list[tuple[str, str, int]] = []  # (stype_in symbol, raw symbol, instrument id)
        while True:
            ln = (await reader.readline()).decode().strip()
            if not ln:
                writer.close()
                return
            if ln.startswith("start_session"):
                break
            self.subscriptions.append(f"dataset={dataset}|{ln}")
            f = dict(kv.split("=", 1) for kv in ln.split("|"))
            for s in f.get("symbols", "").split(","):
                if f.get("stype_in") == "parent":
                    symbols += [(s, raw, iid) for raw, iid in self.parents.get(s, {}).items()]
                elif s in self.ids:
                    symbols.append((s, s, self.ids[s]))
        symbols = list(dict.fromkeys(symbols))
        plans = self.plans_by_dataset.get(dataset, self.plans)
        n_conn = self.datasets.count(dataset)
        plan = plans[min(n_conn - 1, len(plans) - 1)]
        now = dt.datetime.now(dt.UTC)
        now_ns = int(now.timestamp()) * NS
        out = metadata_bytes(dataset, now_ns, None, [s for s, _, _ in symbols], self.ids)
        for s_in, raw, iid in symbols:
            out += bytes(
                dbn.SymbolMappingMsg(
                    publisher_id=0,
                    instrument_id=iid,
                    ts_event=now_ns,
                    stype_in=dbn.SType.PARENT if s_in != raw else dbn.SType.RAW_SYMBOL,
                    stype_in_symbol=s_in,
                    stype_out=dbn.SType.INSTRUMENT_ID,
                    stype_out_symbol=raw,
                    start_ts=now_ns,
                    end_ts=now_ns + 86_400 * NS,
                )
            )
        out += bytes(
            dbn.SystemMsg(
                ts_event=now_ns,
                msg="Subscription request 0 for trades data succeeded",
                code=dbn.SystemCode.SUBSCRIPTION_ACK,
            )
        )
        ids = {iid for _, _, iid in symbols}
        for r in plan.records:
            if r.instrument_id in ids:
                out += bytes(r)
        for _ in range(plan.heartbeats):
            out += bytes(dbn.SystemMsg(ts_event=now_ns, msg="Heartbeat", code=dbn.SystemCode.HEARTBEAT))
        writer.write(out)
        await writer.drain()
        await asyncio.sleep(0.3)  # let the client read what was sent before the connection drops
        if plan.ending == "rst":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        elif plan.ending == "hang":
            assert self._closing is not None
            await self._closing.wait()
            writer.close()
        else:
            writer.close()

    def start(self) -> int:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop

            async def main() -> None:
                self._closing = asyncio.Event()
                self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
                self.port = self._server.sockets[0].getsockname()[1]
                ready.set()
                await self._server.serve_forever()

            with contextlib.suppress(asyncio.CancelledError, RuntimeError):
                loop.run_until_complete(main())

        threading.Thread(target=run, daemon=True).start()
        ready.wait(5)
        return self.port

    def stop(self) -> None:
        """Close the listener and cancel the open connections (hanging ones included)."""
        if self._loop is None or self._server is None:
            return
        loop, server = self._loop, self._server

        def shutdown() -> None:
            server.close()
            if self._closing is not None:
                self._closing.set()

        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(shutdown)


def trade(iid: int, ts: int, price: float, seq: int, size: int = 100) -> Any:
    return dbn.TradeMsg(
        publisher_id=1,
        instrument_id=iid,
        ts_event=ts,
        price=round(price * 100) * 10_000_000,
        size=size,
        action=dbn.Action.TRADE,
        side=dbn.Side.BID,
        depth=0,
        ts_recv=ts,
        sequence=seq,
    )


def dumps(obj: Any) -> str:
    return json.dumps(obj)
