"""A worker process for the chaos harness: `tether.Worker` on a database file, nothing else.

Equivalent to `tether worker --db DB --lease-ttl TTL` (the harness can use that too, with
`worker_cmd="cli"`), but starts in a tenth of the time because it does not import every CLI area;
with a hundred restarts on a 2-core machine that difference is most of the test's budget.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from tether import Worker, open_store


async def serve(db: str, lease_ttl: float, poll: float, concurrency: int) -> None:
    worker = Worker(open_store(db), lease_ttl=lease_ttl, poll_interval=poll,
                    concurrency=concurrency)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"worker {worker.owner} ready", flush=True)
    await worker.serve(stop=stop)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--lease-ttl", type=float, default=1.0)
    parser.add_argument("--poll", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    asyncio.run(serve(args.db, args.lease_ttl, args.poll, args.concurrency))


if __name__ == "__main__":
    main()
