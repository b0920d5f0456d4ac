"""The cross-process determinism check rejects output that depends on the hash seed."""

from __future__ import annotations

import pytest
from hashseeds import across_hash_seeds, assert_same_across_hash_seeds


def test_the_seeds_give_different_set_orders() -> None:
    outputs = across_hash_seeds("hashseeds", "seed_sensitive")
    assert len(set(outputs.values())) == len(outputs) > 1


def test_the_check_fails_on_seed_dependent_output() -> None:
    with pytest.raises(AssertionError, match="differs under PYTHONHASHSEED"):
        assert_same_across_hash_seeds("hashseeds", "seed_sensitive")
