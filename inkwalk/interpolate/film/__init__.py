"""FILM (Reda et al. 2022) in PyTorch: the network, the official-checkpoint converter, inference.

The ArtWalks stage-2 interpolator. The "film" method of `inkwalk.interpolate` calls
`interpolate_pair(load_film(...), frame0, frame1, times)`. See docs/film.md.
"""

from inkwalk.interpolate.film.convert import (
    FilmCheckpointError,
    convert_official_checkpoint,
    load_film,
    read_film,
    save_film,
    write_tiny_checkpoint,
)
from inkwalk.interpolate.film.infer import FilmInputError, interpolate_pair, pad_to_multiple
from inkwalk.interpolate.film.net import STYLE_CONFIG, TINY_CONFIG, FilmConfig, FilmNet

__all__ = [
    "FilmCheckpointError", "FilmConfig", "FilmInputError", "FilmNet", "STYLE_CONFIG", "TINY_CONFIG",
    "convert_official_checkpoint", "interpolate_pair", "load_film", "pad_to_multiple", "read_film",
    "save_film", "write_tiny_checkpoint",
]
