"""Fashion-MNIST test images as PNG files, for the scripts that send them to `siamese serve`
(scripts/load-test, scripts/page-check). Reads Debian's dataset-fashion-mnist files."""
import gzip
import struct
import zlib
from pathlib import Path

DATA = Path("/usr/share/datasets/fashion-mnist")


def png(pixels, height=28, width=28):
    """A grey 8-bit PNG file of `pixels` (height * width bytes, row by row)."""
    scan = b"".join(b"\0" + pixels[r * width:(r + 1) * width] for r in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(scan)) + chunk(b"IEND", b""))


def test_images(count):
    """The first `count` test images as (PNG bytes, label)."""
    raw = gzip.open(DATA / "t10k-images-idx3-ubyte.gz").read()
    labels = gzip.open(DATA / "t10k-labels-idx1-ubyte.gz").read()[8:]
    magic, n, rows, cols = struct.unpack(">IIII", raw[:16])
    if magic != 2051 or (rows, cols) != (28, 28):
        raise SystemExit(f"{DATA}: not the Fashion-MNIST image file")
    return [(png(raw[16 + i * 784:16 + (i + 1) * 784]), labels[i]) for i in range(min(count, n))]
