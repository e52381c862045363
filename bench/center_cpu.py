"""The Center's CPU per call, in one process, without the sockets and the other processes.

``center.py`` and ``storm.py`` measure rates over real sockets, and on this
shared 2-core machine their figures move by a tenth or more from run to run
(bench/README.md): a change worth 5 % of the Center's CPU does not show. This
bench measures CPU time of its own process (``time.process_time``), one call
at a time, with nothing else of the system running. Process time still moves
by up to a fifth between runs here (other tenants of the machine); for
figures nothing blurs, count instructions: run it under ``valgrind
--tool=callgrind`` at two sizes and divide the difference (bench/README.md,
``center_cpu.py``).

- ``catalog``: ``events.catalog`` for center.py's member ``bench`` on
  center.py's data (``--events``, ``--registrations``; SQLite in a temporary
  folder, or a scratch database on ``--database-url``), the user loaded in a
  read session as the API's request does: CPU per call.
- ``routes``: the four routes center.py holds to its target, through the real
  web application over ``httpx.ASGITransport`` (as ``storm-user``), on
  center.py's data and credentials (its bench user's API token and signed-in
  cookie): CPU per request of each, the client's share included. Run under
  py-spy (without ``--gil``: one request at a time, so no thread waits for
  the GIL) it shows where a request's time goes, SQLite's own included.
- ``storm-user``: what one user of the join storm costs, through the real web
  application (``webprocess.create_app``, driven over ``httpx.ASGITransport``
  from loopback, so no socket nor HTTP parser): the event page, then a join
  ticket, as a user seen for the first time, signed in at the proxy
  (``X-Remote-User``), on storm.py's settings and tree (SQLite). The figure
  includes the client's own CPU (httpx, about a tenth).

Each workload runs ``--rounds`` rounds after a warm-up; the spread of the rounds
is the noise. ``--profile`` prints the hottest functions of one more round
(``cProfile`` on process time, of the calling thread only: on SQLite the four
hot reads run there, on the event loop, but a sync route such as the ticket, or
any route on PostgreSQL, runs on a worker thread it does not see; use py-spy
``--gil`` on this bench for those).

    .venv/bin/python bench/center_cpu.py
    .venv/bin/python bench/center_cpu.py --workloads catalog --database-url postgresql+psycopg://u@h/postgres
    .venv/bin/python bench/center_cpu.py --workloads storm-user --users 2000 --json
    .venv/bin/python bench/center_cpu.py --workloads routes --routes '/events/{id}' --calls 1000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import functools
import itertools
import json
import pstats
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from center import BENCH_USER, drop_postgres, log, scratch_postgres, seed  # bench/center.py

WORKLOADS = ("catalog", "routes", "storm-user")


def rounds_of(work: Callable[[], None], per_round: int, rounds: int) -> list[float]:
    """CPU milliseconds per call of ``work()`` (which makes ``per_round`` calls), each round."""
    figures = []
    for _ in range(rounds):
        started = time.process_time()
        work()
        figures.append((time.process_time() - started) / per_round * 1000)
    return figures


async def async_rounds_of(
    work: Callable[[], Awaitable[None]], per_round: int, rounds: int
) -> list[float]:
    """``rounds_of`` for a coroutine's ``work()``."""
    figures = []
    for _ in range(rounds):
        started = time.process_time()
        await work()
        figures.append((time.process_time() - started) / per_round * 1000)
    return figures


@contextlib.contextmanager
def profiled(top: int) -> Iterator[None]:
    """cProfile, on process time, of what runs inside; its ``top`` functions to stderr."""
    profile = cProfile.Profile(time.process_time)
    profile.enable()
    try:
        yield
    finally:
        profile.disable()
        pstats.Stats(profile, stream=sys.stderr).sort_stats("tottime").print_stats(top)


def catalog_workload(args: argparse.Namespace, data: Path) -> dict[str, Any]:
    from sqlalchemy import select

    from townhall.center.events import CatalogQuery, catalog
    from townhall.center.tables import User
    from townhall.store import make_engine, make_read_session_factory

    scratch: str | None = None
    url = f"sqlite:///{data / 'catalog.db'}"
    if args.database_url:
        url, scratch = scratch_postgres(args.database_url)
    try:
        seeded = seed(url, args.seed_users, args.events, args.registrations, random.Random(1))
        engine = make_engine(url)
        sessions = make_read_session_factory(engine)
        by_name = select(User).where(User.username == BENCH_USER)
        shown = 0

        def calls(count: int) -> None:
            nonlocal shown
            for _ in range(count):
                with sessions() as session:
                    user = session.scalars(by_name).one()
                    rows, _more = catalog(session, user, CatalogQuery(limit=50))
                    shown = len(rows)

        calls(args.calls)  # warm-up: statements compiled, and prepared on PostgreSQL
        figures = rounds_of(lambda: calls(args.calls), args.calls, args.rounds)
        if args.profile:
            with profiled(args.top):
                calls(args.calls)
        engine.dispose()
        return {
            "workload": "catalog",
            "database": engine.dialect.name,
            "events": seeded.events,
            "registrations": seeded.registrations,
            "events_per_page": shown,
            "calls_per_round": args.calls,
            "cpu_ms_per_call": [round(f, 3) for f in figures],
        }
    finally:
        if scratch is not None:
            drop_postgres(args.database_url, scratch)


ROUTES = ("/api/v1/events?limit=50", "/api/v1/events/{id}", "/events", "/events/{id}")


def routes_workload(args: argparse.Namespace, data: Path) -> dict[str, Any]:
    import httpx

    from townhall.center.auth import SESSION_COOKIE
    from townhall.config import load_settings
    from townhall.webprocess import create_app

    url = f"sqlite:///{data / 'townhall.db'}"
    scratch: str | None = None
    if args.database_url:
        url, scratch = scratch_postgres(args.database_url)
    rng = random.Random(1)
    try:
        seeded = seed(url, args.seed_users, args.events, args.registrations, rng)
        config = data / "townhall.toml"
        config.write_text(f'[center]\ndatabase_url = "{url}"\n[center.mail]\npoll_seconds = 60\n')
        app = create_app(load_settings(data, config), run_workers=False)
        headers = {
            "api": {"Authorization": f"Bearer {seeded.token}"},
            "page": {"Cookie": f"{SESSION_COOKIE}={seeded.cookie}"},
        }
        failures: list[str] = []

        async def requests(route: str, count: int, client: httpx.AsyncClient) -> None:
            kind = "api" if route.startswith("/api/") else "page"
            for _ in range(count):
                path = route.replace("{id}", str(rng.choice(seeded.visible_ids)))
                answer = await client.get(path, headers=headers[kind])
                if answer.status_code != 200 and len(failures) < 5:
                    failures.append(f"{path}: {answer.status_code}")

        async def run() -> dict[str, list[float]]:
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
            figures: dict[str, list[float]] = {}
            async with app.router.lifespan_context(app):
                async with httpx.AsyncClient(
                    transport=transport, base_url="http://127.0.0.1"
                ) as client:
                    for route in args.routes:
                        await requests(route, args.calls, client)  # warm-up
                        figures[route] = await async_rounds_of(
                            functools.partial(requests, route, args.calls, client),
                            args.calls,
                            args.rounds,
                        )
                    if args.profile:
                        with profiled(args.top):
                            for route in args.routes:
                                await requests(route, args.calls, client)
            return figures

        figures = asyncio.run(run())
        if failures:
            raise SystemExit(f"routes: refused requests: {failures}")
        return {
            "workload": "routes",
            "database": url.partition(":")[0].partition("+")[0],
            "events": seeded.events,
            "registrations": seeded.registrations,
            "requests_per_round": args.calls,
            "cpu_ms_per_request": {
                route: [round(f, 3) for f in values] for route, values in figures.items()
            },
        }
    finally:
        if scratch is not None:
            drop_postgres(args.database_url, scratch)


def storm_user_workload(args: argparse.Namespace, data: Path) -> dict[str, Any]:
    import httpx
    from storm import prepare  # bench/storm.py

    from townhall.config import load_settings
    from townhall.webprocess import create_app

    system = prepare(data, 2, 1000, 5000)  # no live server runs: the tree is only named
    app = create_app(load_settings(data, system.config), run_workers=False)
    event = system.event_id
    failures: list[str] = []

    async def users(start: int, count: int, client: httpx.AsyncClient) -> None:
        for number in range(start, start + count):
            headers = {"X-Remote-User": f"user{number:06d}"}
            page = await client.get(f"/events/{event}", headers=headers)
            ticket = await client.post(f"/api/v1/events/{event}/ticket", headers=headers, json={})
            for answer in (page, ticket):
                if answer.status_code != 200 and len(failures) < 5:
                    failures.append(f"{answer.request.url.path}: {answer.status_code}")

    async def run() -> list[float]:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(
                transport=transport, base_url="http://127.0.0.1"
            ) as client:
                await users(0, args.users, client)  # warm-up
                starts = itertools.count(args.users, args.users)  # new users each round
                figures = await async_rounds_of(
                    lambda: users(next(starts), args.users, client), args.users, args.rounds
                )
                if args.profile:
                    with profiled(args.top):
                        await users(next(starts), args.users, client)
                return figures

    figures = asyncio.run(run())
    if failures:
        raise SystemExit(f"storm-user: refused requests: {failures}")
    return {
        "workload": "storm-user",
        "database": "sqlite",
        "users_per_round": args.users,
        "cpu_ms_per_user": [round(f, 3) for f in figures],
    }


def print_figures(label: str, figures: list[float], unit: str) -> None:
    print(
        f"{label}: {', '.join(f'{f:.2f}' for f in figures)} ms of CPU per {unit} "
        f"(min {min(figures):.2f}, max {max(figures):.2f})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--workloads", default=",".join(WORKLOADS), help=f"comma-separated of {WORKLOADS}"
    )
    parser.add_argument(
        "--database-url", default="", help="PostgreSQL for catalog and routes (a scratch db)"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--calls", type=int, default=400, help="catalog calls, or requests of each route, per round"
    )
    parser.add_argument(
        "--routes", default=",".join(ROUTES), help=f"routes: comma-separated of {ROUTES}"
    )
    parser.add_argument("--users", type=int, default=500, help="storm users per round")
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--registrations", type=int, default=100_000)
    parser.add_argument("--seed-users", type=int, default=1_000)
    parser.add_argument("--profile", action="store_true", help="cProfile one more round")
    parser.add_argument("--top", type=int, default=30, help="functions the profile prints")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    chosen = [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown = sorted(set(chosen) - set(WORKLOADS))
    if unknown or not chosen:
        parser.error(f"--workloads: choose among {', '.join(WORKLOADS)}")
    args.routes = [r.strip() for r in args.routes.split(",") if r.strip()]
    if not args.routes or not set(args.routes) <= set(ROUTES):
        parser.error(f"--routes: choose among {', '.join(ROUTES)}")
    if min(args.rounds, args.calls, args.users) < 1:
        parser.error("--rounds, --calls and --users must be at least 1")
    reports = []
    for workload in chosen:
        data = Path(tempfile.mkdtemp(prefix="townhall-cpu-"))
        try:
            log(f"{workload}: {args.rounds} rounds")
            run = {
                "catalog": catalog_workload,
                "routes": routes_workload,
                "storm-user": storm_user_workload,
            }[workload]
            reports.append(run(args, data))
        finally:
            shutil.rmtree(data, ignore_errors=True)
    if args.json:
        print(json.dumps(reports, indent=2))
    else:
        for report in reports:
            if report["workload"] == "routes":
                for route, figures in report["cpu_ms_per_request"].items():
                    print_figures(f"GET {route} ({report['database']})", figures, "request")
            elif report["workload"] == "catalog":
                print_figures(f"catalog ({report['database']})", report["cpu_ms_per_call"], "call")
            else:
                print_figures("storm-user (sqlite)", report["cpu_ms_per_user"], "user")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
