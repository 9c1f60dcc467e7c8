"""Session fixtures. Helpers live in tests/helpers.py. No audio is committed: it is generated here."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

from components import synthetic_data
from tests.helpers import TINY_SPEC


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp("tiny_dataset"))
    synthetic_data.generate_dataset(root, TINY_SPEC)
    return root
