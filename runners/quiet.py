"""Keeps the runners' console to the project's own progress lines; with --verbose, TensorFlow's, TFX's
and Beam's own logs show too.

Import this first in every runner, before anything imports TensorFlow: TensorFlow reads its C++ log
level once, when it is first imported (its "Unable to register cuFFT/cuDNN/cuBLAS factory" lines are
printed by that import), which is before any flag is parsed, so --verbose is read from the command
line here. Subprocesses (Beam workers) inherit the level through the environment.
"""

import argparse
import contextlib
import logging
import os
import sys
import warnings

from absl import logging as absl_logging

VERBOSE_FLAG = "--verbose"
VERBOSE = VERBOSE_FLAG in sys.argv[1:]

if not VERBOSE:
    # TensorFlow's C++ logs of every level: CUDA probing and factory registration, oneDNN, CPU features.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore", category=FutureWarning)  # google.api_core: "Python 3.10 unsupported"
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=RuntimeWarning, module="tensorflow_model_analysis")  # 0/0 at PR ends


def add_verbose_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(VERBOSE_FLAG, action="store_true",
                        help="also show TensorFlow's, TFX's and Beam's own logs (read from the command line)")


def setup_logging(verbose: bool = VERBOSE) -> None:
    """Python logging for a runner's __main__: warnings and our own progress lines; everything with verbose."""
    level = logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    # Our own progress lines (files done / total, rates) always show.
    logging.getLogger("capuchin").setLevel(logging.INFO)
    # TFX logs through absl; TensorFlow's "Instructions for updating" notices are WARNINGs. The level is
    # set as absl's verbosity, which TensorFlow restores after saving a model (the Transform graph).
    absl_logging.set_verbosity(absl_logging.INFO if verbose else absl_logging.WARNING)
    logging.getLogger("tensorflow").setLevel(level if verbose else logging.ERROR)


class _ProgressFilter(logging.Filter):
    """Lets through the orchestrator's 'Component X is running/finished' lines and errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return record.levelno >= logging.ERROR or (
            message.startswith("Component ") and (" is running" in message or " is finished" in message)
        )


@contextlib.contextmanager
def component_progress(verbose: bool = VERBOSE):
    """Prints one line as each TFX component starts and finishes, without the rest of TFX's INFO log
    (with verbose: all of it, as setup_logging set it)."""
    if verbose:
        yield
        return
    absl_logger = logging.getLogger("absl")
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("      %(asctime)s %(message)s", datefmt="%H:%M:%S"))
    handler.addFilter(_ProgressFilter())
    saved = absl_logging.get_verbosity(), absl_logger.propagate
    # As absl's verbosity, not the logger's level: TensorFlow puts the verbosity back after saving a
    # model (Transform), which reset a level set on the logger alone and hid every later line.
    absl_logging.set_verbosity(absl_logging.INFO)
    absl_logger.propagate = False
    absl_logger.addHandler(handler)
    try:
        yield
    finally:
        absl_logger.removeHandler(handler)
        absl_logging.set_verbosity(saved[0])
        absl_logger.propagate = saved[1]
