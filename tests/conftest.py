"""Session fixtures. Helpers live in tests/helpers.py. No audio is committed: it is generated here."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

from components import synthetic_data
from tests.helpers import SMALL_DEFAULT_SPEC, TINY_SPEC

# Tests that need a trained pipeline are end-to-end: marked here, so a new one cannot forget.
E2E_FIXTURE = "trained_pipeline"


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items):
    """Marks `e2e` every test that uses `trained_pipeline`, directly or through another fixture."""
    for item in items:
        if E2E_FIXTURE in getattr(item, "fixturenames", ()):  # the closure of the test's fixtures
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp("tiny_dataset"))
    synthetic_data.generate_dataset(root, TINY_SPEC)
    return root


@pytest.fixture(scope="session")
def trained_pipeline(tmp_path_factory):
    """Two real pipeline runs into one output dir, on the default clips with short recordings.

    The first trains the default model (the ensemble and its student), blesses, pushes and counts the
    recordings; the second asks for a recall above 1.0, so it must neither bless nor push.
    Returns (data_root, output_dir, first report, second report).
    """
    from runners import local_runner

    data_root = str(tmp_path_factory.mktemp("small_default_data"))
    synthetic_data.generate_dataset(data_root, SMALL_DEFAULT_SPEC)
    output_dir = str(tmp_path_factory.mktemp("local_run"))
    common = ["--data-root", data_root, "--output-dir", output_dir]
    good = local_runner.run(common)
    failing = local_runner.run(common + ["--recall-floor", "1.01"])
    return data_root, output_dir, good, failing
