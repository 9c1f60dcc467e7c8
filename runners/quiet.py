"""Keeps the runners' console readable: TensorFlow's C++ logs and Google client deprecation notices off.

Import this first in every runner, before anything imports TensorFlow.
"""

import logging
import os
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # C++ INFO/WARNING lines (CUDA probing, oneDNN)
warnings.filterwarnings("ignore", category=FutureWarning)  # google.api_core: "Python 3.10 unsupported"
warnings.filterwarnings("ignore", category=DeprecationWarning)


def setup_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    # absl (TFX) installs its own handler; route everything through one format.
    logging.getLogger("absl").setLevel(logging.WARNING if level > logging.DEBUG else level)
