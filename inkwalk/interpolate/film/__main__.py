"""``python -m inkwalk.interpolate.film convert SRC DST``: official FILM weights -> our file.

SRC: the official ``film_net/Style/saved_model`` folder (needs tensorflow), or an ``.npz`` /
``.safetensors`` of its variables ``{var.name: array}``. DST: the ``.safetensors`` file that
`load_film` reads (put it where `inkwalk.models` looks for ``film-style``).
"""

from __future__ import annotations

import argparse
import sys

from inkwalk.errors import InkwalkError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m inkwalk.interpolate.film",
                                     description="Convert the official FILM checkpoint to inkwalk's format.")
    sub = parser.add_subparsers(dest="command", required=True)
    convert = sub.add_parser("convert", help="official SavedModel / variables dump -> .safetensors")
    convert.add_argument("src", help="film_net/Style/saved_model folder, or .npz/.safetensors of its variables")
    convert.add_argument("dst", help="output .safetensors")
    args = parser.parse_args(argv)
    from inkwalk.interpolate.film import STYLE_CONFIG, convert_official_checkpoint, save_film

    try:
        state = convert_official_checkpoint(args.src, STYLE_CONFIG)
        path = save_film(args.dst, state, STYLE_CONFIG)
    except InkwalkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {path} ({sum(v.numel() for v in state.values()):,} parameters)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
