"""Bad inputs a hostile-but-fair user sends, as files and as a table of CLI invocations.

`make_files(folder)` writes the bad (and a few good) inputs once; `CLI` is the table that
tests/test_cli_bad_inputs.py runs through `inkwalk.cli.main`. HTTP rows reuse the same files:
upload `files["bomb.png"]` etc. and assert the status and the ``detail`` line the same way.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


def png_header(width: int, height: int) -> bytes:
    """A PNG signature, an IHDR claiming width x height and IEND: a header with no pixel data at all,
    so a refusal that names the size (not "truncated") was made from the header alone."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) \
        + chunk(b"IEND", b"")


def make_files(folder: Path) -> dict[str, Path]:
    """Good and bad inputs under `folder`, by name."""
    from inkwalk.paintings import draw
    from inkwalk.video_writer import write_video

    folder.mkdir(parents=True, exist_ok=True)
    f = {name: folder / name for name in
         ("a.png", "b.png", "tiny.png", "corrupt.png", "empty.png", "notes.png", "bomb.png", "huge.png",
          "strip.png", "anim.gif", "clip.mp4", "blocker", "folder", "dir.mp4", "models")}
    Image.fromarray(draw("river", (64, 48), 0)).save(f["a.png"])
    Image.fromarray(draw("mountains", (64, 48), 1)).save(f["b.png"])
    Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(f["tiny.png"])
    f["corrupt.png"].write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    f["empty.png"].write_bytes(b"")
    f["notes.png"].write_text("not a picture\n")
    f["bomb.png"].write_bytes(png_header(50000, 50000))  # Pillow's own bomb limit
    f["huge.png"].write_bytes(png_header(12000, 12000))  # under Pillow's, over the CLI's 120 Mpx
    f["strip.png"].write_bytes(png_header(250000, 64))  # the 47 kB strip that took an ingress to 3.4 GB
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(f["anim.gif"])
    rng = np.random.default_rng(0)
    write_video(f["clip.mp4"], rng.integers(0, 255, (6, 32, 32, 3), dtype=np.uint8), fps=6)
    f["blocker"].write_text("a file where a folder should be")
    for name in ("folder", "dir.mp4", "models"):
        f[name].mkdir(exist_ok=True)
    return f


@dataclass(frozen=True)
class BadInput:
    """One bad invocation: `argv` may name files as ``{a.png}`` and a fresh output folder as ``{out}``.

    `env`: variables to set (a None value unsets one). `code`: the exit status (2 = argparse,
    1 = refused). `message`: a fragment of the one line printed. `seconds`: the time bound.
    """

    id: str
    argv: tuple[str, ...]
    code: int
    message: str
    env: tuple[tuple[str, str | None], ...] = ()
    seconds: float = 3.0


def fill(text: str, names: dict[str, str]) -> str:
    """`text` with each ``{name}`` replaced by ``names[name]`` (file names contain dots: no str.format)."""
    for key, value in names.items():
        text = text.replace("{" + key + "}", value)
    return text


def _walk(*extra: str, paintings=("{a.png}", "{b.png}"), out="{out}/w.mp4") -> tuple[str, ...]:
    return ("walk", *paintings, "-o", out, "--preset", "offline", "--size", "64x64", *extra)


ONLINE_BUT_HUB_SILENT = (("HF_HUB_OFFLINE", None), ("TRANSFORMERS_OFFLINE", None), ("HF_ENDPOINT", "{silent}"))

CLI = [
    # absurd sizes
    BadInput("walk-size-99999", _walk("--size", "99999x99999"), 1, "--size 99999x99999: must be WIDTHxHEIGHT"),
    BadInput("walk-size-8k2", _walk("--size", "8000x8000"), 1, "exceeds the limit of 33177600 pixels"),
    BadInput("walk-size-word", _walk("--size", "big"), 1, "--size big: must be WIDTHxHEIGHT"),
    BadInput("walk-upscale-x1000", _walk("--upscale", "x1000"), 1, "--upscale x1000: must be none, xF"),
    BadInput("walk-total-frames", _walk("--hold", "600", "--fps", "240"), 1, "the limit is 200000 frames per job"),
    BadInput("walk-upscale-rounds-to-zero", _walk("--upscale", "x0.001"), 1,
             "--upscale x0.001: the output size 0x0: each side must be 16..16384"),
    BadInput("walk-upscale-2x2", _walk("--upscale", "2x2"), 1, "--upscale 2x2: the output size 2x2: each side"),
    BadInput("upscale-size-2x2", ("upscale", "{a.png}", "-o", "{out}/u.png", "--backend", "lanczos", "--size",
                                  "2x2"), 1, "--size 2x2: must be WIDTHxHEIGHT, each side 16..16384"),
    BadInput("upscale-size-x0", ("upscale", "{a.png}", "-o", "{out}/u.png", "--backend", "lanczos", "--size", "x0"),
             1, "--size x0: must be xF (a factor, 0 < F <= 8) or WIDTHxHEIGHT"),
    BadInput("upscale-size-x0.01", ("upscale", "{a.png}", "-o", "{out}/u.png", "--backend", "lanczos", "--size",
                                    "x0.01"), 1, "--size x0.01: the output size 1x0: each side must be 16..16384"),
    BadInput("t2v-size-99968", ("t2v", "hills", "-o", "{out}/t.mp4", "--size", "99968"), 1,
             "--size 99968: must be a multiple of 8 in 8..16384 per side"),
    BadInput("demo-size", ("demo", "-o", "{out}/d.mp4", "--size", "99999x99999"), 1, "--size 99999x99999"),
    BadInput("upscale-size", ("upscale", "{a.png}", "-o", "{out}/u.png", "--backend", "lanczos", "--size",
                              "99999x99999"), 1, "--size 99999x99999: must be WIDTHxHEIGHT"),
    # NaN, infinity, zero and negative numbers
    BadInput("walk-fps-nan", _walk("--fps", "nan"), 1, "--fps nan: must be a number in 1..240"),
    BadInput("walk-fps-inf", _walk("--fps", "inf"), 1, "--fps inf: must be a number in 1..240"),
    BadInput("walk-fps-zero", _walk("--fps", "0"), 1, "--fps 0.0: must be a number in 1..240"),
    BadInput("walk-hold-negative", _walk("--hold", "-1"), 1, "--hold -1.0: must be a number in 0..600"),
    BadInput("walk-frames-negative", _walk("--frames", "-3"), 1, "--frames -3: must be an integer in 0..512"),
    BadInput("walk-keyframes-huge", _walk("--keyframes", "100000"), 1, "--keyframes 100000: must be an integer"),
    BadInput("walk-seed-negative", _walk("--seed", "-1"), 1, "--seed -1: must be an integer in 0..4294967295"),
    BadInput("t2v-guidance-nan", ("t2v", "hills", "-o", "{out}/t.mp4", "--guidance", "nan"), 1,
             "--guidance nan: must be a number in 0..30"),
    BadInput("t2v-frames-zero", ("t2v", "hills", "-o", "{out}/t.mp4", "--frames", "0"), 1, "--frames 0"),
    BadInput("t2v-fps-zero", ("t2v", "hills", "-o", "{out}/t.mp4", "--fps", "0"), 1, "--fps 0.0: must be"),
    # scrolls: windows, prompt schedules, frame counts over the limit, sizes not multiples of 8
    BadInput("t2v-window-over-frames", ("t2v", "hills", "-o", "{out}/t.mp4", "--frames", "8", "--window", "12"), 1,
             "--window 12: window 12 is larger than the video's 8 frames"),
    BadInput("t2v-overlap-window", ("t2v", "hills", "-o", "{out}/t.mp4", "--frames", "32", "--window", "8",
                                    "--overlap", "8"), 1, "--overlap 8: overlap 8: must be at least 0 and smaller"),
    BadInput("t2v-prompts-range", ("t2v", "hills", "-o", "{out}/t.mp4", "--frames", "16", "--prompts",
                                   "0:spring|16:autumn"), 1, "frame 16 is out of range: the video has 16 frames"),
    BadInput("t2v-prompts-unordered", ("t2v", "hills", "-o", "{out}/t.mp4", "--prompts", "6:autumn|2:spring"), 1,
             "--prompts 6:autumn|2:spring: frame 2 comes after frame 6"),
    BadInput("t2v-weighting-unknown", ("t2v", "hills", "-o", "{out}/t.mp4", "--weighting", "sawtooth"), 2,
             "invalid choice: 'sawtooth'"),
    BadInput("t2v-noise-unknown", ("t2v", "hills", "-o", "{out}/t.mp4", "--noise", "perlin"), 2,
             "invalid choice: 'perlin'"),
    BadInput("t2v-prompts-file", ("t2v", "hills", "-o", "{out}/t.mp4", "--prompts", "{out}/none.json"), 1,
             ": no such JSON file"),
    BadInput("t2v-frames-limit", ("t2v", "hills", "-o", "{out}/t.mp4", "--frames", "5000"), 1,
             "--frames 5000: must be an integer in 2..1024"),
    BadInput("t2v-windowing", ("t2v", "hills", "-o", "{out}/t.mp4", "--windowing", "frames"), 1,
             "--windowing frames: must be one of: model, motion"),
    BadInput("t2v-size-wide-odd", ("t2v", "hills", "-o", "{out}/t.mp4", "--size", "516x256"), 1,
             "--size 516x256: must be a multiple of 8"),
    BadInput("interpolate-fps-negative", ("interpolate", "{clip.mp4}", "-o", "{out}/i.mp4", "--fps", "-5"), 1,
             "--fps -5.0: must be a number > 0"),
    BadInput("interpolate-factor-huge", ("interpolate", "{clip.mp4}", "-o", "{out}/i.mp4", "--factor", "1000"),
             1, "--factor 1000: must be an integer in 2..64"),
    BadInput("upscale-tile-zero", ("upscale", "{a.png}", "-o", "{out}/u.png", "--tile", "0"), 1,
             "--tile 0: must be an integer in 16..4096"),
    # wrong types and unknown names
    BadInput("walk-frames-word", _walk("--frames", "abc"), 2, "invalid int value: 'abc'"),
    BadInput("walk-preset-unknown", _walk("--preset", "fancy"), 2, "invalid choice: 'fancy'"),
    BadInput("command-unknown", ("paint", "x"), 2, "invalid choice: 'paint'"),
    BadInput("walk-keyframer-none", _walk("--keyframes", "2", "--keyframer", "none"), 1,
             "2 keyframes asked for but keyframer is 'none'"),
    BadInput("t2v-prompt-empty", ("t2v", "  ", "-o", "{out}/t.mp4"), 1, "prompt is empty"),
    # paintings: missing, empty, corrupt, not images, huge headers, thin strips, tiny
    BadInput("walk-one-painting", _walk(paintings=("{a.png}",)), 1, "a walk needs at least 2 paintings"),
    BadInput("walk-missing", _walk(paintings=("{a.png}", "{out}/nope.png")), 1, "nope.png': file not found"),
    BadInput("walk-empty-file", _walk(paintings=("{a.png}", "{empty.png}")), 1, "is empty (0 bytes)"),
    BadInput("walk-corrupt", _walk(paintings=("{a.png}", "{corrupt.png}")), 1, "is truncated or corrupt"),
    BadInput("walk-not-an-image", _walk(paintings=("{a.png}", "{notes.png}")), 1, "notes.png' is not an image"),
    BadInput("walk-gif", _walk(paintings=("{a.png}", "{anim.gif}")), 1, "is GIF; accepted image types"),
    BadInput("walk-folder", _walk(paintings=("{a.png}", "{folder}")), 1, "is a folder, not an image file"),
    BadInput("walk-bomb-header", _walk(paintings=("{a.png}", "{bomb.png}")), 1, "its header claims more than"),
    BadInput("walk-huge-header", _walk(paintings=("{a.png}", "{huge.png}")), 1,
             "144000000 pixels; the limit is 120000000"),
    BadInput("walk-thin-strip", _walk(paintings=("{a.png}", "{strip.png}")), 1, "an aspect ratio of 3906:1"),
    BadInput("walk-tiny-painting", _walk("--size", "720x720", paintings=("{a.png}", "{tiny.png}")), 1,
             "would enlarge it 90.0x; the limit is 64x"),
    BadInput("upscale-bomb", ("upscale", "{bomb.png}", "-o", "{out}/u.png", "--backend", "lanczos"), 1,
             "its header claims more than"),
    BadInput("eval-missing-video", ("eval", "{out}/none.mp4", "--prompt", "x"), 1, "none.mp4: file not found"),
    # outputs: extensions, folders
    BadInput("walk-out-gif", _walk(out="{out}/w.gif"), 1, "must end in .mp4 (H.264 in an MP4 container), not '.gif'"),
    BadInput("walk-out-png", _walk(out="{out}/w.png"), 1, "must end in .mp4"),
    BadInput("t2v-out-mov", ("t2v", "hills", "-o", "{out}/t.mov"), 1, "must end in .mp4"),
    BadInput("interpolate-out-gif", ("interpolate", "{clip.mp4}", "-o", "{out}/i.gif"), 1, "must end in .mp4"),
    BadInput("upscale-image-to-mp4", ("upscale", "{a.png}", "-o", "{out}/u.mp4"), 1, "must end in .png"),
    BadInput("walk-out-under-a-file", _walk(out="{blocker}/w.mp4"), 1, "blocker is not a folder"),
    BadInput("walk-out-is-a-folder", _walk(out="{dir.mp4}"), 1, "is a folder: give a file name"),
    BadInput("walk-out-read-only", _walk(out="/proc/inkwalk-test/w.mp4"), 1, "cannot write to folder /proc"),
    # aspect ratio changes need a decision
    BadInput("upscale-aspect", ("upscale", "{a.png}", "-o", "{out}/u.png", "--backend", "lanczos", "--size",
                                "160x90"), 1, "changes the aspect ratio of the 64x48 input"),
    # models: missing, offline, hub unreachable
    BadInput("walk-paper-no-weights", _walk("--preset", "paper", "--models", "{models}"), 1,
             "kandinsky-2-2-prior, kandinsky-2-2-decoder, realesrgan-x4plus: HF_HUB_OFFLINE is set"),
    BadInput("t2v-offline-no-models", ("t2v", "hills", "-o", "{out}/t.mp4", "--models", "{models}"), 1,
             "sd15-unet, animatediff-motion-adapter: HF_HUB_OFFLINE is set"),
    BadInput("t2v-hub-silent", ("t2v", "hills", "-o", "{out}/t.mp4", "--models", "{models}"), 1,
             "could not be reached within 3 s", env=ONLINE_BUT_HUB_SILENT, seconds=6.0),
    BadInput("eval-offline-no-models", ("eval", "{clip.mp4}", "--prompt", "a boat", "--models", "{models}"), 1,
             "model clip-vit-large-patch14 not available"),
    BadInput("eval-hub-silent", ("eval", "{clip.mp4}", "--prompt", "a boat", "--models", "{models}"), 1,
             "could not be reached within 3 s", env=ONLINE_BUT_HUB_SILENT, seconds=6.0),
    BadInput("upscale-no-realesrgan", ("upscale", "{a.png}", "-o", "{out}/u.png", "--models", "{models}"), 1,
             "-- or use --backend lanczos (no weights), or download the model with `inkwalk models fetch"),
    BadInput("upscale-no-compact", ("upscale", "{a.png}", "-o", "{out}/u.png", "--backend", "realesrgan-compact",
                                    "--models", "{models}"), 1,
             "or download the model with `inkwalk models fetch realesr-animevideov3`"),
    BadInput("interpolate-film-no-weights", ("interpolate", "{clip.mp4}", "-o", "{out}/i.mp4", "--method", "film",
                                             "--models", "{models}"), 1, "film-style: no public download"),
]
