"""Fixtures shared by the ConCLVD test modules (import them into a test module to use them)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def conclvd_tiny(tiny_models):
    """ConCLVD on the tiny SD 1.5, initialised from the tiny random AnimateDiff adapter."""
    from inkwalk.conclvd import load_conclvd

    return load_conclvd(models_dir=tiny_models)
