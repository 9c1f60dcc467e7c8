"""Transform module: the waveform → spectrogram step, computed in-graph by tf.Transform.

Because it runs inside the Transform graph, the exported model applies exactly the same step to raw
audio at serving time (see model/model.py).
"""

import tensorflow as tf
import tensorflow_transform as tft

from model import features


def _stft_magnitude(audio: tf.Tensor) -> tf.Tensor:
    """The tutorial's spectrogram: |STFT| 320/32. float32[batch, 48000] → [batch, 1491, 257]."""
    return tf.abs(
        tf.signal.stft(audio, features.STFT_FRAME_LENGTH, features.STFT_FRAME_STEP, features.STFT_FFT_LENGTH)
    )


def log_mel(audio: tf.Tensor) -> tf.Tensor:
    """Band-limited log-mel spectrogram. float32[batch, 48000] → [batch, 297, 48]; audio of any length
    gives 1 + (length - 512) // 160 frames (counting's whole recordings, model/export.py)."""
    # A 512-sample frame is already a power of two, so the FFT is 512 long: 257 bins. Only the 161 up to
    # MEL_UPPER_HZ have mel weight; the magnitude of the rest would be multiplied by zero (a third less
    # log-mel time when counting, for the same values).
    stft = tf.signal.stft(audio, features.MEL_FRAME_LENGTH, features.MEL_FRAME_STEP)  # [b, 297, 257]
    magnitude = tf.abs(stft[..., : features.MEL_STFT_BINS])  # [b, 297, 161]
    return tf.math.log(tf.tensordot(magnitude, mel_weights()[: features.MEL_STFT_BINS], axes=1)
                       + features.LOG_OFFSET)  # [b, 297, 48]


def mel_weights() -> tf.Tensor:
    """The mel filterbank over all 257 bins of a 512-sample frame's FFT. [257, 48]"""
    return tf.signal.linear_to_mel_weight_matrix(
        num_mel_bins=features.MEL_BANDS,
        num_spectrogram_bins=features.MEL_FRAME_LENGTH // 2 + 1,
        sample_rate=features.SAMPLE_RATE,
        lower_edge_hertz=features.MEL_LOWER_HZ,
        upper_edge_hertz=features.MEL_UPPER_HZ,
    )


def remove_band_medians(log_mel: tf.Tensor) -> tf.Tensor:
    """Subtracts each band's median over the window: steady background (wind, rain, recorder hiss,
    each recorder's colour) drops out and what changes in time, like a call, stays.

    A lower floor than the median counted no better (BENCHMARKS.md, "Tried and not kept").
    """
    # The median is the largest of the smallest half (+1) of each band's frames: the same value as the
    # middle of a full sort (tf.sort), for less work than sorting.
    by_band = tf.transpose(log_mel, [0, 2, 1])  # [batch, bands, frames]
    smallest_half = -tf.math.top_k(-by_band, k=tf.shape(by_band)[2] // 2 + 1, sorted=False).values
    medians = tf.reduce_max(smallest_half, axis=2)  # [batch, bands]
    return log_mel - medians[:, None, :]


def preprocessing_fn(inputs, custom_config=None):
    """tf.Transform callback (called by TFX Transform).

    Args:
      inputs: raw features; `audio` is float32[batch, 48000] (SchemaGen infers the fixed shape).
      custom_config: {'spectrogram': 'logmel' (default) or 'stft' (the tutorial's)}.

    Returns:
      {'audio_xf': float32[batch, frames, bins], 'label': int64[batch]} (label only when present); the
      log-mel's also {'spectrogram_mean', 'spectrogram_std'}: float32[batch], its scale.
    """
    kind = (custom_config or {}).get("spectrogram", features.SPECTROGRAM_LOGMEL)
    audio = inputs[features.AUDIO_KEY]
    if kind == features.SPECTROGRAM_STFT:
        # Raw magnitudes, exactly as the tutorial feeds them.
        outputs = {features.AUDIO_XF_KEY: _stft_magnitude(audio)}
    elif kind == features.SPECTROGRAM_LOGMEL:
        band_relative = remove_band_medians(log_mel(audio))
        # One mean and variance over the training set (a full pass): the scale of the data, not of a clip.
        mean, std = tft.mean(band_relative), tf.sqrt(tft.var(band_relative))
        batch = tf.shape(audio)[:1]
        outputs = {features.AUDIO_XF_KEY: (band_relative - mean) / std,
                   # The scale again, one copy per example as Transform's outputs are: for counting,
                   # which computes a whole recording's log-mel once and scales it itself (model/export.py).
                   features.SPECTROGRAM_MEAN_KEY: tf.fill(batch, mean),
                   features.SPECTROGRAM_STD_KEY: tf.fill(batch, std)}
    else:
        raise ValueError(f"unknown spectrogram {kind!r}")
    if features.LABEL_KEY in inputs:
        outputs[features.LABEL_KEY] = inputs[features.LABEL_KEY]
    return outputs
