"""The stored form of vectors: pgvector text, five decimals, encoded once."""

from __future__ import annotations

import math

import pytest

from domain.store import encode_vector


def test_components_are_rounded_to_five_decimals_in_a_form_pgvector_reads() -> None:
    assert encode_vector([0.123456, -0.5, 0.0, 1.0]) == "[12346e-5,-50000e-5,0e-5,100000e-5]"


def test_an_encoded_vector_passes_through_unchanged() -> None:
    encoded = encode_vector([0.25, 0.75])
    assert encode_vector(encoded) is encoded


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_components_are_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="NaN or infinite"):
        encode_vector([0.5, bad])
