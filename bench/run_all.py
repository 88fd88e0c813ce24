"""Run every benchmark of firstright and print one table of figures (``make bench``).

Each benchmark is a module of this package with ``main() -> dict[str, object]``; the gateway
benchmark is a shell script that runs firstright next to LiteLLM and the bare upstream
(``bench/gateway_bench.sh``) and is run only with ``--gateway`` because it installs LiteLLM and
takes several minutes. Results also go to ``.bench/results.json``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
from pathlib import Path

MODULES = ("contract_gate", "placement_bench", "routing_bench", "settlement_bench")
ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="*", default=None, help="benchmark modules to run")
    parser.add_argument("--gateway", action="store_true", help="also run the gateway harness")
    args = parser.parse_args(argv)
    results: dict[str, object] = {}
    for name in args.only or MODULES:
        module = importlib.import_module(f"bench.{name}")
        print(f"== {name}", flush=True)
        figures = module.main()
        results[name] = figures
        for key, value in figures.items():
            print(f"  {key}: {value}")
    if args.gateway:
        print("== gateway (firstright vs LiteLLM vs direct)", flush=True)
        done = subprocess.run(["bash", str(ROOT / "bench" / "gateway_bench.sh")], check=False)
        results["gateway_exit_code"] = done.returncode
    out = ROOT / ".bench" / "results.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"results written to {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
