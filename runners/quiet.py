"""Keeps the runners' console readable: TensorFlow's C++ logs and Google client deprecation notices off.

Import this first in every runner, before anything imports TensorFlow.
"""

import contextlib
import logging
import os
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # C++ INFO/WARNING lines (CUDA probing, oneDNN)
warnings.filterwarnings("ignore", category=FutureWarning)  # google.api_core: "Python 3.10 unsupported"
warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", category=RuntimeWarning, module="tensorflow_model_analysis")  # 0/0 at PR ends


def setup_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    # Our own progress lines (files done / total, rates) always show.
    logging.getLogger("capuchin").setLevel(logging.INFO)
    # TFX logs through absl; TensorFlow's "Instructions for updating" notices are WARNINGs.
    logging.getLogger("absl").setLevel(level)
    logging.getLogger("tensorflow").setLevel(max(level, logging.ERROR))


class _ProgressFilter(logging.Filter):
    """Lets through the orchestrator's 'Component X is running/finished' lines and errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return record.levelno >= logging.ERROR or (
            message.startswith("Component ") and (" is running" in message or " is finished" in message)
        )


@contextlib.contextmanager
def component_progress():
    """Prints one line as each TFX component starts and finishes, without the rest of TFX's INFO log."""
    absl_logger = logging.getLogger("absl")
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("      %(asctime)s %(message)s", datefmt="%H:%M:%S"))
    handler.addFilter(_ProgressFilter())
    saved = absl_logger.level, absl_logger.propagate
    absl_logger.setLevel(logging.INFO)
    absl_logger.propagate = False
    absl_logger.addHandler(handler)
    try:
        yield
    finally:
        absl_logger.removeHandler(handler)
        absl_logger.setLevel(saved[0])
        absl_logger.propagate = saved[1]
