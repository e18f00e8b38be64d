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


def _unfilter(raw: np.ndarray, h: int, stride: int, bpp: int) -> np.ndarray:
    """Undo the PNG row filters: raw [h, 1 + stride] -> bytes [h, stride]."""
    out = np.zeros((h, stride), np.uint8)
    prev = np.zeros(stride, np.uint8)
    for y in range(h):
        kind, row = raw[y, 0], raw[y, 1:]
        if kind == 0:
            cur = row.copy()
        elif kind == 1:      # Sub: running sum along the row, per byte of a pixel
            cur = np.cumsum(row.reshape(-1, bpp), 0, dtype=np.uint8).reshape(-1)
        elif kind == 2:      # Up
            cur = row + prev
        elif kind in (3, 4):  # Average / Paeth depend on the decoded left pixel: one pixel at a time
            cur = row.astype(np.int32)
            up = prev.astype(np.int32)
            for x in range(0, stride, bpp):
                b = up[x:x + bpp]
                a = cur[x - bpp:x] if x else np.zeros(bpp, np.int32)
                if kind == 3:
                    pred = (a + b) >> 1
                else:
                    c = up[x - bpp:x] if x else np.zeros(bpp, np.int32)
                    p = a + b - c
                    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
                    pred = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
                cur[x:x + bpp] = (cur[x:x + bpp] + pred) & 0xFF
            cur = cur.astype(np.uint8)
        else:
            raise ValueError(f"corrupt PNG (unknown row filter {kind})")
        out[y] = prev = cur
    return out


def decode_rgb(data: bytes) -> np.ndarray:
    """PNG bytes -> float32 [H, W, 3] in 0..1, at full precision for 16-bit files. Alpha is
    ignored and greyscale becomes grey RGB. ValueError says what is wrong with the data."""
    chunks = list(_chunks(data))
    if chunks[0][0] != b"IHDR" or len(chunks[0][1]) != 13:
        raise ValueError("corrupt PNG (the first chunk is not a valid IHDR)")
    w, h, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    if depth != 16:
        from PIL import Image
        try:
            with Image.open(io.BytesIO(data)) as im:
                return np.asarray(im.convert("RGB"), np.float32) / 255.0
        except (OSError, ValueError) as e:
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
    rows = _unfilter(np.frombuffer(raw, np.uint8).reshape(h, 1 + stride), h, stride, ch * 2)
    samples = rows.view(">u2").reshape(h, w, ch).astype(np.float32) / 65535.0
    grey = ch <= 2
    return np.repeat(samples[..., :1], 3, -1) if grey else np.ascontiguousarray(samples[..., :3])
