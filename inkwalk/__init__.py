"""inkwalk: paintings and text into art videos (ArtWalks, ConCLVD), at cluster scale on Ray.

This package holds the algorithms only (PyTorch + numpy); Ray lives in data_pipeline/,
training/ and services/.
"""

__version__ = "0.1.0"
