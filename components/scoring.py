"""Loading a pushed model and scoring 3 s waveforms with its raw-audio signature.

Shared by `runners/score_clips.py` and the counting job. `--model` may name one SavedModel or the
Pusher's base folder, in which case the newest pushed version is used.
"""

import functools
import json
import os
from typing import Dict, Optional

import numpy as np

from model import constants, features

# Where a pushed model carries its counting operating point (TF Serving's folder for extra files):
# written by ThresholdSelector (the eval-clip threshold), then by CountCalibrator (the site's).
THRESHOLD_FILE = os.path.join("assets.extra", "threshold.json")


def pushed_destination(pushed_model) -> Optional[str]:
    """Where the Pusher copied the model, or None when it pushed nothing. `pushed_model`: a PushedModel
    artifact, or its properties as a dict (as pipeline/metadata.py reads them from ML Metadata)."""
    get = pushed_model.get if isinstance(pushed_model, dict) else pushed_model.get_custom_property
    return get("pushed_destination") if get("pushed") == 1 else None


def resolve_model_dir(path: str) -> str:
    """The SavedModel folder itself, or the newest numbered version under a Pusher base folder."""
    import tensorflow as tf

    if tf.io.gfile.exists(os.path.join(path, "saved_model.pb")):
        return path
    versions = sorted(
        int(name.rstrip("/"))
        for name in (tf.io.gfile.listdir(path) if tf.io.gfile.isdir(path) else [])
        if name.rstrip("/").isdigit() and tf.io.gfile.exists(os.path.join(path, name.rstrip("/"), "saved_model.pb"))
    )
    if not versions:
        raise FileNotFoundError(f"no SavedModel at {path} (nor a pushed version below it)")
    return os.path.join(path, str(versions[-1]))


def default_rule_point(threshold: float, source: str) -> Dict:
    """An operating point: `threshold` with the default merging rule (model/features.py)."""
    return {"threshold": threshold, "gap_seconds": features.CALL_GAP_SECONDS,
            "min_call_seconds": features.MIN_CALL_SECONDS, "source": source}


def read_operating_point(model_dir: str) -> Dict:
    """{threshold, gap_seconds, min_call_seconds, source}: how the counting job turns this model's scores
    into calls. The model's own when the pipeline recorded one (site calibration, else the eval-clip
    threshold), else the tutorial's threshold; the merging rule's defaults where it recorded none."""
    point = default_rule_point(features.TUTORIAL_THRESHOLD, "the tutorial's threshold")
    recorded = _recorded_thresholds(model_dir)
    if recorded is not None:
        point.update({key: recorded[key] for key in point if key in recorded})
        point["source"] = recorded.get("source", "eval clips")
    return point


def read_clip_threshold(model_dir: str) -> Dict:
    """{threshold, source}: where `score_clips.py` calls a clip a call. The threshold chosen on the eval
    clips (ThresholdSelector), which site calibration keeps beside the counting point as `eval_threshold`:
    clips are judged against other clips, calls and tonal birds alike, not against the site's forest, whose
    calibrated threshold sits far lower (BENCHMARKS.md, "Clip decisions"). The tutorial's threshold where the
    model carries none."""
    recorded = _recorded_thresholds(model_dir)
    if recorded is None:
        return {"threshold": features.TUTORIAL_THRESHOLD, "source": "the tutorial's threshold"}
    return {"threshold": recorded.get("eval_threshold", recorded["threshold"]), "source": "eval clips"}


def _recorded_thresholds(model_dir: str) -> Optional[Dict]:
    """The model's threshold.json (THRESHOLD_FILE), or None where the pipeline wrote none."""
    import tensorflow as tf

    path = os.path.join(model_dir, THRESHOLD_FILE)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.loads(f.read())


def band_read(model_dir: str) -> float:
    """The highest frequency a model's spectrograms read: the log-mel's (features.MEL_UPPER_HZ) for a frame
    model (the default architecture), else the whole band (the tutorial's |STFT|, older models). From the
    SavedModel's signatures alone, without loading its graph."""
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(os.path.join(model_dir, "saved_model.pb"), "rb") as f:
        saved_model.ParseFromString(f.read())
    return features.MEL_UPPER_HZ if _scores_frames(saved_model.meta_graphs[0].signature_def) else features.FULL_BAND_HZ


def _scores_frames(signatures) -> bool:
    """Whether a model's frames signature gives several scores per window (a frame model), not one per
    window (the tutorial's) or none (models exported before frames existed)."""
    if constants.FRAMES_SIGNATURE not in signatures:
        return False
    frames = signatures[constants.FRAMES_SIGNATURE].outputs[constants.FRAME_PREDICTION_KEY]
    return frames.tensor_shape.dim[-1].size != 1


@functools.lru_cache(maxsize=None)
def cpu_has_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX-BF16; Linux's /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = set(f.read().split())
    except OSError:
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def networks_in_bfloat16(requested: bool) -> bool:
    """Whether the networks run in bfloat16 when `requested`: only where the CPU computes it natively,
    since elsewhere it would be emulated, slower."""
    return requested and cpu_has_bfloat16()


class WindowScorer:
    """Call probability of 3 s, 16 kHz waveforms, through the model's raw-audio signatures: one per
    window (`__call__`), or one per model frame (`frames`; models without frames give one per window).
    Frame models also give their spectrograms (`spectrograms`) and score spectrograms of any length
    (`sequence_frames`), for counting whole recordings (components/counting/scorer.py); those exported
    since give the log-mel of audio of any length (`log_mels`) and its scale (`spectrogram_scale`).

    Only the SavedModel's graph is loaded, into a session of its own, and the signatures are run there:
    reviving the Keras objects as well (`tf.saved_model.load`) took 2.8 s for the 3-network default against
    1.1 s, for the same probabilities (to 2e-8), and a counting run pays it before its first window.
    """

    def __init__(self, model_path: str, bfloat16: bool = True):
        self.model_dir = resolve_model_dir(model_path)
        # bfloat16 networks: about 3x faster, frame probabilities within 0.01 of float32 (BENCHMARKS.md).
        self.bfloat16 = networks_in_bfloat16(bfloat16)
        self._session, meta_graph = self._load(self.bfloat16)
        self._audio_input, self._window_output = self._tensors(meta_graph, constants.AUDIO_SIGNATURE,
                                                               constants.PREDICTION_KEY)
        # Models exported before frames existed score whole windows only, and so does the tutorial's
        # (its frames signature gives one score per window).
        self._frame_output = None
        self.scores_frames = _scores_frames(meta_graph.signature_def)
        if constants.FRAMES_SIGNATURE in meta_graph.signature_def:
            self._frames_input, self._frame_output = self._tensors(meta_graph, constants.FRAMES_SIGNATURE,
                                                                   constants.FRAME_PREDICTION_KEY)
        # Frame models exported since can also score a whole recording's spectrogram at once.
        self.scores_sequences = constants.SEQUENCE_SIGNATURE in meta_graph.signature_def
        if self.scores_sequences:
            self._spectrograms_input, self._spectrograms_output = self._tensors(
                meta_graph, constants.SPECTROGRAMS_SIGNATURE, constants.SPECTROGRAM_KEY)
            self._sequence_input, self._sequence_output = self._tensors(
                meta_graph, constants.SEQUENCE_SIGNATURE, constants.FRAME_PREDICTION_KEY, constants.SPECTROGRAM_KEY)
        # And those exported since compute the log-mel of audio of any length, and give its scale.
        self.scores_log_mel = constants.LOG_MEL_SIGNATURE in meta_graph.signature_def
        if self.scores_log_mel:
            self._log_mel_input, self._log_mel_output = self._tensors(
                meta_graph, constants.LOG_MEL_SIGNATURE, constants.LOG_MEL_KEY)
            outputs = meta_graph.signature_def[constants.LOG_MEL_SIGNATURE].outputs
            # (mean, standard deviation) of the log-mel with band medians removed: constants of the model,
            # given with the log-mel of any audio (here one frame's).
            self.spectrogram_scale = tuple(float(value) for value in self._session.run(
                [outputs[key].name for key in (features.SPECTROGRAM_MEAN_KEY, features.SPECTROGRAM_STD_KEY)],
                {self._log_mel_input: np.zeros((1, features.MEL_FRAME_LENGTH), np.float32)}))

    def _load(self, bfloat16: bool):
        """(a session with the SavedModel's graph loaded, its MetaGraphDef). Without Grappler's graph
        rewrites (loading and the first call of each signature take ~0.6 s less in all, and later calls
        run as fast), or with only oneDNN's rewrite to bfloat16 (`bfloat16`)."""
        import tensorflow as tf

        config = tf.compat.v1.ConfigProto()
        if bfloat16:
            # The rewrite turns every MatMul and Conv2D into bfloat16. The networks are convolutions (a
            # Keras Conv1D is a Conv2D); the spectrograms' one MatMul, the mel filter bank, stays float32
            # (the spectrograms are then the float32 ones to the bit: tests/test_counting.py).
            os.environ.setdefault("TF_AUTO_MIXED_PRECISION_GRAPH_REWRITE_ALLOWLIST_REMOVE", "MatMul")
            config.graph_options.rewrite_options.optimizers.append("auto_mixed_precision_onednn_bfloat16")
        else:
            config.graph_options.rewrite_options.disable_meta_optimizer = True
        graph = tf.Graph()
        session = tf.compat.v1.Session(graph=graph, config=config)
        with graph.as_default():
            meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], self.model_dir)
        return session, meta_graph

    @staticmethod
    def _tensors(meta_graph, signature: str, output: str, input_key: str = features.AUDIO_KEY):
        """Names of a signature's input and of one of its outputs in the loaded graph."""
        signature_def = meta_graph.signature_def[signature]
        return signature_def.inputs[input_key].name, signature_def.outputs[output].name

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        """float32[n, 48000] → float32[n] probabilities."""
        if windows.shape[0] == 0:
            return np.zeros(0, dtype=np.float32)
        probabilities = self._session.run(self._window_output, {self._audio_input: self._checked(windows)})
        return probabilities.reshape(-1)

    def frames(self, windows: np.ndarray) -> np.ndarray:
        """float32[n, 48000] → float32[n, frames] probabilities (frames = 1 for a window-only model)."""
        if self._frame_output is None:
            return self(windows)[:, None]
        if windows.shape[0] == 0:
            return np.zeros((0, 1), dtype=np.float32)
        return self._session.run(self._frame_output, {self._frames_input: self._checked(windows)})

    def spectrograms(self, windows: np.ndarray) -> np.ndarray:
        """float32[n, 48000] → the model's spectrograms float32[n, 297, bands] (its Transform graph)."""
        return self._session.run(self._spectrograms_output, {self._spectrograms_input: self._checked(windows)})

    def log_mels(self, audio: np.ndarray) -> np.ndarray:
        """float32[n, samples] of any length → unscaled log-mel spectrograms float32[n, 1 + (samples - 512) // 160, bands]."""
        return self._session.run(self._log_mel_output, {self._log_mel_input: audio.astype(np.float32, copy=False)})

    def sequence_frames(self, spectrograms: np.ndarray) -> np.ndarray:
        """float32[n, frames, bands] spectrograms of any length → float32[n, frames // 4] frame probabilities."""
        return self._session.run(self._sequence_output, {self._sequence_input: spectrograms.astype(np.float32, copy=False)})

    @staticmethod
    def _checked(windows: np.ndarray) -> np.ndarray:
        assert windows.shape[1:] == (features.CLIP_SAMPLES,), windows.shape
        return windows.astype(np.float32, copy=False)
