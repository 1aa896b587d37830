"""The proof that ``JsonFileStorage`` is a ``Storage``: the whole shipped contract, run against it.

This is all an integrator writes: subclass ``StorageContract`` and override one fixture.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from examples.custom_storage import JsonFileStorage

from telecard_auth.testing import StorageContract


class TestJsonFileStorage(StorageContract):
    """Every test of the contract: the three operations, the rules through it, thread races."""

    # Each commit fsyncs a file; a quarter of the default rounds keeps the suite quick.
    race_rounds = 50

    @pytest.fixture
    def storage(self, tmp_path: Path) -> JsonFileStorage:
        """A fresh, empty directory for each test."""
        return JsonFileStorage(tmp_path / "codes")
