"""The forms of vectors: halfvec's binary form that chunks are written in, and pgvector's text
(five decimals, encoded once) for statement parameters."""

from __future__ import annotations

import math

import pytest

import numpy as np

from domain.pgbinary import HALF_MAX, halfvec_components, halfvecs
from domain.store import encode_vector, encode_vectors


def test_components_are_rounded_to_five_decimals_in_a_form_pgvector_reads() -> None:
    assert encode_vector([0.123456, -0.5, 0.0, 1.0]) == "[0012346e-5,-050000e-5,0000000e-5,0100000e-5]"


def test_a_matrix_encodes_row_by_row_to_the_values_each_row_holds() -> None:
    rng = np.random.default_rng(7)
    matrix = rng.normal(size=(40, 33))
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    encoded = encode_vectors(matrix)
    assert len(encoded) == 40
    for text, row in zip(encoded, matrix, strict=True):
        assert text.startswith("[") and text.endswith("]")
        np.testing.assert_allclose([float(x) for x in text[1:-1].split(",")], row, atol=5e-6)


def test_components_beyond_one_take_the_slow_path_with_the_same_values() -> None:
    assert encode_vector([2.5, -12.000004, 0.5]) == "[250000e-5,-1200000e-5,50000e-5]"


def test_an_empty_matrix_and_zero_dimensions_encode_to_nothing_and_empty_vectors() -> None:
    assert encode_vectors(np.zeros((0, 4))) == []
    assert encode_vectors(np.zeros((2, 0))) == ["[]", "[]"]


def test_an_encoded_vector_passes_through_unchanged() -> None:
    encoded = encode_vector([0.25, 0.75])
    assert encode_vector(encoded) is encoded


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_components_are_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="NaN or infinite"):
        encode_vector([0.5, bad])


def test_a_binary_vector_holds_its_dimensions_and_each_component_as_a_big_endian_half() -> None:
    [payload] = halfvecs(np.array([[1.0, -2.0, 0.5]]))
    assert payload == bytes.fromhex("0003 0000 3c00 c000 3800".replace(" ", ""))


def test_binary_vectors_keep_each_row_to_half_precision_and_decode_back_to_text() -> None:
    rng = np.random.default_rng(3)
    matrix = rng.normal(size=(25, 384))
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    payloads = halfvecs(matrix)
    assert len(payloads) == 25 and {len(p) for p in payloads} == {4 + 2 * 384}
    for payload, row in zip(payloads, matrix, strict=True):
        np.testing.assert_allclose(halfvec_components(payload), row, rtol=1e-3, atol=1e-4)
        text = encode_vector(payload)
        np.testing.assert_allclose([float(x) for x in text[1:-1].split(",")], halfvec_components(payload), atol=5e-6)


@pytest.mark.parametrize("bad", [math.nan, math.inf, HALF_MAX * 2])
def test_components_a_half_cannot_hold_are_refused_in_binary(bad: float) -> None:
    with pytest.raises(ValueError, match="NaN or infinite|beyond halfvec's range"):
        halfvecs(np.array([[0.5, bad]]))
