"""What the two-user slixmpp scripts share (tests/e2e_slixmpp.rs `run_pair_script`): their
command line, a deadline around the whole run, a goodbye that cannot hide the verdict, and
the verdict itself: "FAIL: ..." lines and exit 1, or "OK" and exit 0.

A script defines `async def run(args) -> list[str]` (the failures, empty when every step
held) and ends with `sys.exit(pair.main(run, __doc__, deadline=...))`.
"""

import argparse
import asyncio
import logging


def close_all(clients):
    """Disconnects every client; a failed goodbye is ignored."""
    for c in clients:
        try:
            c.disconnect(wait=0)
        except Exception:  # noqa: BLE001 - a failed goodbye must not hide the verdict
            c.abort()


def main(run, doc, deadline=30.0):
    """Parses the common arguments, runs `run(args)` within the deadline, prints the verdict;
    the exit status."""
    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--alice", required=True)
    parser.add_argument("--bob", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--deadline", type=float, default=deadline)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    budget = max(args.deadline - 8.0, 1.0)

    async def bounded():
        return await asyncio.wait_for(run(args), budget)

    try:
        failures = asyncio.run(bounded())
    except asyncio.TimeoutError:
        failures = [f"did not finish within {args.deadline} s"]
    except Exception as e:  # noqa: BLE001 - report, do not crash without a verdict
        failures = [f"{type(e).__name__}: {e}"]
    if failures:
        for f in failures:
            print(f"FAIL: {f}")
        return 1
    print("OK")
    return 0
