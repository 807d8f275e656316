"""A projector consumer in its own process, for the Redis bus tests.

    python -m tests.bus_worker --redis URL --stream S --db URL --name N [--batch B]
                               [--hang-on-batch K]

Prints ``READY`` once it has joined the consumer group. Normally it consumes until
SIGTERM and then prints ``{"applied": n}``. With ``--hang-on-batch K`` its K-th batch
commits only its first half and then the process hangs (printing ``HANG <n>``)
before acknowledging anything, so a test can SIGKILL it between delivery and ack.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import Sequence

from tower.bus.redis_streams import RedisStreamBus
from tower.domain import load_figures
from tower.events import EventRecord
from tower.flows import load_flows
from tower.settings import DEFAULT_DATA_DIR
from tower.store.engine import make_engine
from tower.store.projector import Projector


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis", required=True)
    parser.add_argument("--stream", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--hang-on-batch", type=int, default=0)
    args = parser.parse_args(argv)

    engine = make_engine(args.db)
    projector = Projector(engine, load_flows(DEFAULT_DATA_DIR / "flows.toml"),
                          load_figures(DEFAULT_DATA_DIR / "tower.toml"))
    bus = RedisStreamBus(args.redis, stream=args.stream)
    batches = 0

    def handler(records: Sequence[EventRecord]) -> object:
        nonlocal batches
        batches += 1
        if batches == args.hang_on_batch:
            half = len(records) // 2
            projector.apply(records[:half])  # committed, never acknowledged
            print(f"HANG {half}", flush=True)
            time.sleep(120)  # the test kills us long before this ends
            raise SystemExit(3)
        return projector.apply(records)

    consumer = bus.consumer(handler, name=args.name, batch_size=args.batch, block_ms=200)
    signal.signal(signal.SIGTERM, lambda *_: consumer.stop())
    print("READY", flush=True)
    try:
        consumer.run()
    finally:
        bus.close()
        engine.dispose()
    print(json.dumps({"applied": consumer.applied, "dead_lettered": consumer.dead_lettered}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
