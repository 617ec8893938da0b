"""Rebuild the default demo's shipped models (assets/store), or check that they rebuild bit for
bit (`--check`: exit 1 naming what differs). See tmu/demo.py.

    python scripts/build_demo_store.py [--check]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tmu import demo  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="rebuild in a temporary store and compare"
    )
    args = parser.parse_args()
    if args.check:
        problems = demo.check()
        for p in problems:
            print(f"differs: {p}")
        print("the shipped demo models rebuild bit for bit" if not problems else "")
        return 1 if problems else 0
    manifest = demo.build()
    for key, e in manifest["models"].items():
        print(f"{e['label']:<9} {key}  sha256 {e['sha256'][:16]}…  {e['meta']['seconds']:.1f} s")
    print(f"wrote {demo.SHIPPED}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
