"""Every limit of firstright in one place, enforced at the edges. Units last in the names."""

from __future__ import annotations

# Input files (contracts, requests, configs, case files).
INPUT_FILE_BYTES_MAX = 4 * 1024 * 1024
YAML_DEPTH_MAX = 32
YAML_NODES_MAX = 200_000
YAML_SCALAR_CHARS_MAX = 64 * 1024
CONTRACT_CLAUSES_MAX = 1_000
FILES_PER_CHECK_MAX = 10_000

# Placement.
PLACEMENT_REQUESTS_MAX = 10_000
PLACEMENT_CANDIDATES_SHOWN_MAX = 5
PLACEMENT_NODES_MAX = 100_000
PLACEMENT_SOLVE_TIME_S_MAX = 60.0
