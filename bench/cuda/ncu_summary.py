#!/usr/bin/env python3
"""Per-kernel time table from Nsight Compute's CSV (gpu__time_duration.sum per launch).

Usage: ncu --csv --metrics gpu__time_duration.sum ... > run.csv; ncu_summary.py run.csv [--top N]
Groups launches by kernel name and grid/block size, prints total, count, mean and share of the
whole profiled range, biggest first. Kernels run serialized under the profiler, so the sum is
the step's GPU work without launch gaps or overlap.
"""
import csv
import sys
from collections import defaultdict

UNIT_US = {"nsecond": 1e-3, "ns": 1e-3, "usecond": 1.0, "us": 1.0, "msecond": 1e3, "ms": 1e3, "second": 1e6}


def main():
    path = sys.argv[1]
    top = int(sys.argv[sys.argv.index("--top") + 1]) if "--top" in sys.argv else 40
    with open(path, newline="") as f:
        lines = [line for line in f if line.startswith('"')]  # drop ncu's own log lines
    groups = defaultdict(list)
    for row in csv.DictReader(lines):
        if row.get("Metric Name") != "gpu__time_duration.sum":
            continue
        value = float(row["Metric Value"].replace(",", "")) * UNIT_US[row["Metric Unit"]]
        name = row["Kernel Name"]
        short = name.split("(")[0] if len(name) > 90 else name
        groups[(short[:90], row.get("Grid Size", ""), row.get("Block Size", ""))].append(value)
    total = sum(sum(v) for v in groups.values())
    launches = sum(len(v) for v in groups.values())
    print(f"{launches} launches, {total / 1e3:.3f} ms of kernel time")
    print(f"{'total us':>10} {'count':>6} {'mean us':>9} {'share':>6}  kernel [grid] [block]")
    for key, v in sorted(groups.items(), key=lambda kv: -sum(kv[1]))[:top]:
        print(f"{sum(v):10.1f} {len(v):6d} {sum(v) / len(v):9.2f} {100 * sum(v) / total:5.1f}%  {key[0]} {key[1]} {key[2]}")


if __name__ == "__main__":
    main()
