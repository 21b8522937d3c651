#!/usr/bin/env python3
"""Reads attnlab's TensorBoard event files with TensorBoard's own reader and prints the scalars.

A check that our hand-written TFRecord/protobuf writer (framework/log/tensorboard.cpp) is
what TensorBoard expects. Needs the `tensorboard` package (any venv; not a build dependency):
    python3 -m venv /tmp/tb && /tmp/tb/bin/pip install tensorboard
    /tmp/tb/bin/python tools/tb_read.py runs/<name> [tag ...]
"""
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    acc = EventAccumulator(sys.argv[1])
    acc.Reload()
    tags = sys.argv[2:] or acc.Tags()["scalars"]
    for tag in tags:
        values = ", ".join(f"{e.step}:{e.value:.4g}" for e in acc.Scalars(tag))
        print(f"{tag}: {values}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
