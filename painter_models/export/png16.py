"""Lossless PNG for background images kept in stroke files: 16-bit RGB.

Pillow writes no 16-bit RGB PNG and reads one only as 8-bit, so this module writes and reads that
case itself (numpy + zlib); every other PNG (8-bit, palette, greyscale, alpha) is read with Pillow.
"""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}      # PNG colour type -> samples per pixel (grey, RGB, grey+alpha, RGBA)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_rgb16(image: np.ndarray) -> bytes:
    """float [H, W, 3] in 0..1 -> 16-bit RGB PNG bytes (values rounded to k / 65535)."""
    img = np.asarray(image, np.float64)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an RGB image [H, W, 3], got shape {list(img.shape)}")
    h, w = img.shape[:2]
    rows = np.round(np.clip(img, 0.0, 1.0) * 65535).astype(">u2").reshape(h, w * 3).view(np.uint8)
    # filter type 2 (Up) on every row: the difference to the row above deflates far better than raw bytes
    up = np.diff(rows, axis=0, prepend=np.zeros((1, rows.shape[1]), np.uint8))
    raw = np.concatenate([np.full((h, 1), 2, np.uint8), up], 1).tobytes()
    header = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    return SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 6)) + _chunk(b"IEND", b"")


def _chunks(data: bytes):
    """(kind, payload) of every chunk, with lengths and CRCs checked."""
    if not data.startswith(SIGNATURE):
        raise ValueError("not a PNG (the data does not start with the PNG signature)")
    pos = len(SIGNATURE)
    while pos < len(data):
        if pos + 8 > len(data):
            raise ValueError("truncated PNG (a chunk header is cut off)")
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        end = pos + 12 + length
        if end > len(data):
            raise ValueError(f"truncated PNG (chunk {kind!r} is cut off)")
        payload = data[pos + 8:pos + 8 + length]
        if struct.unpack(">I", data[end - 4:end])[0] != zlib.crc32(kind + payload) & 0xFFFFFFFF:
            raise ValueError(f"corrupt PNG (chunk {kind!r} fails its CRC check)")
        yield kind, payload
        if kind == b"IEND":
            return
        pos = end
    raise ValueError("truncated PNG (no IEND chunk)")


def png_size(data: bytes) -> tuple[int, int]:
    """(height, width) from the PNG header, without decoding the pixels."""
    kind, header = next(_chunks(data))
    if kind != b"IHDR" or len(header) != 13:
        raise ValueError("corrupt PNG (the first chunk is not a valid IHDR)")
    w, h = struct.unpack(">II", header[:8])
    return h, w


def _unfilter(raw: np.ndarray, bpp: int, check=None) -> np.ndarray:
    """Undo the PNG row filters: raw [h, 1 + stride] (filter byte first) -> bytes [h, stride].

    Runs of None / Sub / Up rows are decoded a row at a time (each row one vectorised step; this
    module's own files use Up only), runs with Average / Paeth rows a diagonal at a time
    (_unfilter_diagonals). `check()` is called between runs and every 256 diagonals."""
    h, stride = raw.shape[0], raw.shape[1] - 1
    kinds = raw[:, 0]
    if (kinds > 4).any():
        raise ValueError(f"corrupt PNG (unknown row filter {int(kinds.max())})")
    out = np.zeros((h + 1, stride), np.uint8)          # out[y + 1] is row y; out[0] the zero row above
    y = 0
    while y < h:
        per_row = kinds[y] <= 2
        end = y + 1
        while end < h and (kinds[end] <= 2) == per_row:
            end += 1
        if check is not None:
            check()
        if per_row:
            for k in range(y, end):
                row = raw[k, 1:]
                if kinds[k] == 0:
                    out[k + 1] = row
                elif kinds[k] == 1:   # Sub: a running sum along the row, per byte of a pixel (modulo 256)
                    out[k + 1] = np.cumsum(row.reshape(-1, bpp), 0, dtype=np.uint8).reshape(-1)
                else:                 # Up
                    out[k + 1] = row + out[k]
        else:
            out[y + 1:end + 1] = _unfilter_diagonals(raw[y:end], out[y], bpp, check)
        y = end
    return out[1:]


def _unfilter_diagonals(raw: np.ndarray, above: np.ndarray, bpp: int, check=None) -> np.ndarray:
    """Undo any row filters of raw [n, 1 + stride] below the decoded row `above` [stride].

    A byte depends on the decoded bytes left of it, above it and above-left of it (Average and
    Paeth need all three), so every pixel of an anti-diagonal x + y = d can be decoded at once from
    diagonals d - 1 and d - 2: n + w vectorised steps instead of a Python step per pixel. In a
    row-major buffer with the row above on top and a zero pixel left of every row, a diagonal is a
    strided view (one row down, one pixel left)."""
    n, stride = raw.shape[0], raw.shape[1] - 1
    w = stride // bpp
    kinds = raw[:, 0]
    row = (w + 1) * bpp                                   # padded row length in bytes
    out = np.zeros((n + 1) * row, np.uint8)
    out[bpp:row] = above
    flat = raw.reshape(-1)

    def diagonal(array, offset, count, row_bytes):
        """Bytes [bpp, count] of the pixels (k, -k), k < count, from `offset` of a buffer of row_bytes rows."""
        return np.lib.stride_tricks.as_strided(array[offset:], shape=(bpp, count), strides=(1, row_bytes - bpp),
                                               writeable=array is out)

    for d in range(n + w - 1):
        if check is not None and d % 256 == 255:
            check()
        y0, y1 = max(0, d - w + 1), min(n - 1, d)        # rows on this diagonal
        count, x0 = y1 - y0 + 1, d - y0                   # its first pixel is (y0, x0)
        here = (y0 + 1) * row + (x0 + 1) * bpp            # (y0, x0) in the padded buffer
        a = diagonal(out, here - bpp, count, row).astype(np.int16)        # left
        b = diagonal(out, here - row, count, row).astype(np.int16)        # up
        c = diagonal(out, here - row - bpp, count, row).astype(np.int16)  # up-left
        pa, pb, pc = np.abs(b - c), np.abs(a - c), np.abs(a + b - 2 * c)
        paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
        pred = np.choose(kinds[y0:y1 + 1], (np.zeros_like(a), a, b, (a + b) >> 1, paeth))
        filtered = diagonal(flat, y0 * (stride + 1) + 1 + x0 * bpp, count, stride + 1)
        diagonal(out, here, count, row)[...] = filtered + pred.astype(np.uint8)   # modulo 256
    return out.reshape(n + 1, w + 1, bpp)[1:, 1:].reshape(n, stride)


def decode_rgb(data: bytes, check=None) -> np.ndarray:
    """PNG bytes -> float32 [H, W, 3] in 0..1, at full precision for 16-bit files. Alpha is
    ignored and greyscale becomes grey RGB. ValueError says what is wrong with the data.
    `check()` is called now and then while 16-bit rows are decoded (raise in it to cancel)."""
    chunks = list(_chunks(data))
    if chunks[0][0] != b"IHDR" or len(chunks[0][1]) != 13:
        raise ValueError("corrupt PNG (the first chunk is not a valid IHDR)")
    w, h, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    if depth != 16:
        from PIL import Image
        try:
            with Image.open(io.BytesIO(data)) as im:
                return np.asarray(im.convert("RGB"), np.float32) / 255.0
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            raise ValueError(f"unreadable PNG ({e})") from None
    if colour not in CHANNELS:
        raise ValueError(f"corrupt PNG (colour type {colour} cannot have 16 bits)")
    if interlace:
        raise ValueError("interlaced 16-bit PNGs are not supported: save the image without interlacing")
    ch = CHANNELS[colour]
    stride = w * ch * 2
    expected = h * (1 + stride)
    inflate = zlib.decompressobj()
    try:
        raw = inflate.decompress(b"".join(p for k, p in chunks if k == b"IDAT"), expected + 1)
    except zlib.error as e:
        raise ValueError(f"corrupt PNG (the pixel data does not inflate: {e})") from None
    if len(raw) != expected:
        raise ValueError(f"corrupt PNG (pixel data is {len(raw)} bytes, a {w}x{h} image needs {expected})")
    rows = _unfilter(np.frombuffer(raw, np.uint8).reshape(h, 1 + stride), ch * 2, check)
    samples = rows.view(">u2").reshape(h, w, ch).astype(np.float32) / 65535.0
    grey = ch <= 2
    return np.repeat(samples[..., :1], 3, -1) if grey else np.ascontiguousarray(samples[..., :3])
