"""Writes Megatron-LM indexed datasets with numpy, independently of attnlab's reader, for
tests/framework/megatron_test.cpp. Usage: write_megatron.py OUT_DIR. Each dataset NAME gets
NAME.bin, NAME.idx and NAME.tokens (the expected ids, one per line)."""
import os
import sys

import numpy as np

MAGIC = b"MMIDIDX\x00\x00"
CODES = {np.uint8: 1, np.int8: 2, np.int16: 3, np.int32: 4, np.int64: 5, np.float64: 6, np.float32: 7, np.uint16: 8}


def write(prefix, dtype, documents, modes=False):
    lengths = np.array([len(d) for d in documents], dtype=np.int32)
    item = np.dtype(dtype).itemsize
    pointers = np.concatenate([[0], np.cumsum(lengths[:-1], dtype=np.int64) * item]).astype(np.int64)
    with open(prefix + ".bin", "wb") as f:
        for d in documents:
            f.write(np.array(d, dtype=dtype).tobytes(order="C"))
    with open(prefix + ".idx", "wb") as f:
        f.write(MAGIC)
        f.write(np.array([1], dtype="<u8").tobytes())
        f.write(np.array([CODES[dtype]], dtype=np.uint8).tobytes())
        f.write(np.array([len(documents)], dtype="<u8").tobytes())
        f.write(np.array([len(documents) + 1], dtype="<u8").tobytes())
        f.write(lengths.astype("<i4").tobytes())
        f.write(pointers.astype("<i8").tobytes())
        f.write(np.arange(len(documents) + 1, dtype="<i8").tobytes())
        if modes:
            f.write(np.zeros(len(documents), dtype=np.int8).tobytes())
    with open(prefix + ".tokens", "w") as f:
        f.write("".join(f"{int(t)}\n" for d in documents for t in d))


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(5)
    docs = [rng.integers(0, 260, size=n).tolist() for n in (700, 1, 333, 0, 1200)]
    write(os.path.join(out, "train_text_document"), np.uint16, docs)
    write(os.path.join(out, "val_text_document"), np.uint16, [rng.integers(0, 260, size=400).tolist()])
    write(os.path.join(out, "wide"), np.int32, [[70000, 1, 2**31 - 1], [5]], modes=True)
    write(os.path.join(out, "bytes"), np.uint8, [[0, 255, 7]])
    write(os.path.join(out, "floats"), np.float32, [[1.0, 2.0]])


if __name__ == "__main__":
    main()
