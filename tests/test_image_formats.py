"""Every accepted image file format is admitted, and every pixel format maps to the right 8-bit RGB.

Formats: a real file per `inkwalk.limits.IMAGE_FORMATS` entry, written by Pillow, through the
CLI's path (`inkwalk upscale --backend lanczos`) and the HTTP path (the ingress's
`check_painting_file` on a results store, then the deployment's `decode_painting` of the stored
bytes). Pixel formats: each decoded painting is compared with numpy arithmetic on the raw values
(16-bit scaling, alpha compositing over white, the CMYK and BT.601 YCbCr formulas), not with
Pillow's own conversion.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from inkwalk.image_admission import decode_painting
from inkwalk.limits import IMAGE_FORMATS, Limits
from inkwalk.pixel_formats import BACKGROUND

RNG = np.random.default_rng(7)
RGB = RNG.integers(0, 256, (24, 40, 3), dtype=np.uint8)
LOSSLESS = {"JPEG": {"quality": 100, "subsampling": 0}, "WEBP": {"lossless": True}}


def encoded(array: np.ndarray, fmt: str, mode: str | None = None, **kwargs) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array, mode).save(buf, format=fmt, **kwargs) if mode else \
        Image.fromarray(array).save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_16bit(values: np.ndarray, color_type: int) -> bytes:
    """A 16-bit PNG written by hand (Pillow cannot write 16-bit RGB): colour type 0 grey, 2 RGB."""
    h, w = values.shape[:2]
    rows = values.astype(">u2").reshape(h, -1).tobytes()
    stride = len(rows) // h
    raw = b"".join(b"\x00" + rows[i * stride:(i + 1) * stride] for i in range(h))
    header = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(raw))
            + png_chunk(b"IEND", b""))


@pytest.mark.parametrize("fmt", sorted(IMAGE_FORMATS))
def test_every_accepted_format_is_admitted_over_http(fmt, tmp_path):
    from inkwalk.store import Store
    from services.limits import check_painting_file

    store = Store(tmp_path / "store")
    store.put_bytes("inputs/job/0", encoded(RGB, fmt, **LOSSLESS.get(fmt, {})))
    name = f"my painting.{IMAGE_FORMATS[fmt]}"
    header = check_painting_file(name, store, "inputs/job/0", Limits(), size=(40, 24))
    assert (header.format, header.width, header.height) == (fmt, 40, 24)
    decoded = decode_painting(name, store.get_bytes("inputs/job/0"), Limits(), (40, 24))
    assert np.abs(decoded.astype(int) - RGB).max() <= (0 if fmt != "JPEG" else 8)


@pytest.mark.parametrize("fmt", sorted(IMAGE_FORMATS))
def test_every_accepted_format_is_admitted_by_the_cli(fmt, tmp_path, capsys):
    from inkwalk.cli import main

    src = tmp_path / f"painting.{IMAGE_FORMATS[fmt]}"
    src.write_bytes(encoded(RGB, fmt, **LOSSLESS.get(fmt, {})))
    out = tmp_path / "big.png"
    assert main(["upscale", str(src), "--backend", "lanczos", "--size", "80x48", "-o", str(out)]) == 0, \
        capsys.readouterr().err
    assert Image.open(out).size == (80, 48)


def grey(levels: np.ndarray) -> np.ndarray:
    return np.repeat(levels.astype(np.uint8)[..., None], 3, axis=2)


def scaled(values: np.ndarray, top: float) -> np.ndarray:
    return grey(np.rint(np.clip(values / top, 0, 1) * 255))


def over_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha.astype(float)[..., None] / 255
    return np.rint(rgb * a + np.array(BACKGROUND) * (1 - a)).astype(np.uint8)


RAMP16 = (np.arange(24 * 40).reshape(24, 40) * 68).astype(np.uint16)  # 0..65212
ALPHA = RNG.integers(0, 256, (24, 40), dtype=np.uint8)
CMYK = RNG.integers(0, 256, (24, 40, 4), dtype=np.uint8)
YCC = RNG.integers(16, 240, (24, 40, 3), dtype=np.uint8)
FLOAT = np.linspace(0, 1, 24 * 40, dtype=np.float32).reshape(24, 40)
INT32 = (np.arange(24 * 40).reshape(24, 40) * 2_000_000).astype(np.int32)
BITS = RNG.integers(0, 2, (24, 40)).astype(bool)
PALETTE = RNG.integers(0, 256, (256, 3), dtype=np.uint8)
INDEX = RNG.integers(0, 256, (24, 40), dtype=np.uint8)


def paletted_png(transparent_index: int) -> bytes:
    im = Image.fromarray(INDEX, "P")
    im.putpalette(PALETTE.tobytes())
    buf = io.BytesIO()
    im.save(buf, "PNG", transparency=transparent_index)
    return buf.getvalue()


def ycbcr_expected(ycc: np.ndarray) -> np.ndarray:
    """JPEG's full-range BT.601 YCbCr -> RGB (ITU-T T.871)."""
    y, cb, cr = (ycc[..., i].astype(float) for i in range(3))
    rgb = np.stack([y + 1.402 * (cr - 128), y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128),
                    y + 1.772 * (cb - 128)], axis=-1)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def cmyk_expected(cmyk: np.ndarray) -> np.ndarray:
    c, m, y, k = (cmyk[..., i].astype(float) / 255 for i in range(4))
    return np.rint(np.stack([(1 - c) * (1 - k), (1 - m) * (1 - k), (1 - y) * (1 - k)], -1) * 255).astype(np.uint8)


PIXEL_FORMATS = {
    # id: (file bytes, expected RGB, tolerance in levels)
    "I;16 png (big-endian on disk)": (lambda: encoded(RAMP16, "PNG"), lambda: scaled(RAMP16, 65535), 0),
    "I;16 tiff little-endian": (lambda: encoded(RAMP16.astype("<u2"), "TIFF"), lambda: scaled(RAMP16, 65535), 0),
    "I;16B tiff big-endian": (lambda: encoded(RAMP16.astype(">u2"), "TIFF"), lambda: scaled(RAMP16, 65535), 0),
    "16-bit grey png by hand": (lambda: png_16bit(RAMP16, 0), lambda: scaled(RAMP16, 65535), 0),
    "16-bit RGB png by hand": (lambda: png_16bit(np.stack([RAMP16, 65535 - RAMP16, RAMP16 // 2], -1), 2),
                               lambda: np.stack([RAMP16, 65535 - RAMP16, RAMP16 // 2], -1) / 257, 1),
    "I 32-bit tiff": (lambda: encoded(INT32, "TIFF"), lambda: scaled(INT32.astype(float), 2**31 - 1), 0),
    "I 32-bit tiff, 16-bit values": (lambda: encoded(RAMP16.astype(np.int32), "TIFF"),
                                     lambda: scaled(RAMP16.astype(float), 65535), 0),
    "F tiff in 0..1": (lambda: encoded(FLOAT, "TIFF"), lambda: scaled(FLOAT.astype(float), 1.0), 0),
    "F tiff in 0..255": (lambda: encoded(FLOAT * 255, "TIFF"), lambda: scaled(FLOAT * 255.0, 255.0), 0),
    "L png": (lambda: encoded(INDEX, "PNG"), lambda: grey(INDEX), 0),
    "1 bmp": (lambda: encoded(BITS, "BMP"), lambda: grey(BITS * 255), 0),
    "LA png over white": (lambda: encoded(np.stack([INDEX, ALPHA], -1), "PNG", "LA"),
                          lambda: over_white(grey(INDEX), ALPHA), 1),
    "RGBA png over white": (lambda: encoded(np.dstack([RGB, ALPHA]), "PNG"), lambda: over_white(RGB, ALPHA), 1),
    "RGBA webp over white": (lambda: encoded(np.dstack([RGB, ALPHA]), "WEBP", lossless=True, exact=True),
                             lambda: over_white(RGB, ALPHA), 1),
    "P png with a transparent index": (lambda: paletted_png(int(INDEX[0, 0])),
                                       lambda: np.where((INDEX == INDEX[0, 0])[..., None],
                                                        np.array(BACKGROUND, np.uint8), PALETTE[INDEX]), 0),
    "CMYK tiff": (lambda: encoded(CMYK, "TIFF", "CMYK"), lambda: cmyk_expected(CMYK), 1),
    "YCbCr tiff": (lambda: encoded(YCC, "TIFF", "YCbCr"), lambda: ycbcr_expected(YCC), 1),
}


@pytest.mark.parametrize("case", sorted(PIXEL_FORMATS))
def test_every_pixel_format_maps_to_the_right_8bit_rgb(case):
    data, expected, tolerance = PIXEL_FORMATS[case]
    decoded = decode_painting("p", data(), Limits())
    want = np.asarray(expected(), dtype=float)
    assert decoded.shape == want.shape and decoded.dtype == np.uint8
    assert np.abs(decoded.astype(float) - want).max() <= tolerance, case


def test_a_16bit_grey_painting_is_not_clipped_to_white():
    """The report's case: a mid-grey 16-bit scan decoded to white."""
    mid = np.full((24, 40), 32768, np.uint16)
    assert set(np.unique(decode_painting("scan.png", encoded(mid, "PNG"), Limits()))) == {128}
