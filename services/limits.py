"""Request limits of the HTTP job API: the names the ingress imports, from the inkwalk checks.

The limits and their checks live in `inkwalk.limits`, `inkwalk.settings_schemas` and
`inkwalk.image_admission`, shared with the `inkwalk` command; every
check raises `RequestError(status, message)` whose one-line message says what is wrong and how
to fix it, and the ingress answers ``{"detail": message}`` with that status. Limits come from
the Serve config (`limits:` in an app's args), so an operator tunes them without touching code.
"""

from __future__ import annotations

from inkwalk.image_admission import (ImageHeader, admit_image, check_image, check_upload_size, decode_painting,
                                     image_header)
from inkwalk.limits import IMAGE_FORMATS, Limits, RequestError
from inkwalk.settings_schemas import (check_prompt, check_prompt_length, check_total_upload, parse_conclvd_settings,
                                      parse_walk_settings)
from inkwalk.walk_settings import check_paintings_count, check_walk_sizes

__all__ = ["IMAGE_FORMATS", "ImageHeader", "Limits", "RequestError", "admit_image", "check_image",
           "check_painting_file", "check_paintings_count", "check_prompt", "check_prompt_length",
           "check_total_upload", "check_upload_size", "check_walk_sizes", "decode_painting", "image_header",
           "parse_conclvd_settings", "parse_walk_settings"]


def check_painting_file(name: str, store, rel: str, limits: Limits, size: tuple[int, int] | None = None,
                        fit: str = "crop") -> ImageHeader:
    """An uploaded painting in the results store, checked from its size and header alone (bytes,
    type, pixels, aspect ratio and, given the walk `size`, enlargement): nothing is decoded, so a
    small file that claims a huge picture costs nothing here."""
    check_upload_size(name, store.size(rel) or 0, limits)
    with store.open_input(rel) as handle:
        return admit_image(handle, limits, name, size, fit)
