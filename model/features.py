"""The one home for the numbers every stage shares: audio format, windows, spectrograms, feature keys.

Ingestion, the Transform graph, training and the counting job all import from here, so a clip
means the same thing everywhere. Imports no TensorFlow, so light tools and tests can use it.
"""

# --- Audio -------------------------------------------------------------------------------------
# 16 kHz mono: the tutorial's format. Capuchinbird calls sit below ~3 kHz, so 8 kHz Nyquist is ample.
SAMPLE_RATE = 16_000
# One training example and one scoring window: the tutorial's 3 s clip.
CLIP_SECONDS = 3.0
CLIP_SAMPLES = int(SAMPLE_RATE * CLIP_SECONDS)  # 48,000
# Clips shorter than a window are zero-padded. The tutorial pads at the front; 'back' is the option.
PAD_FRONT = "front"
PAD_BACK = "back"
DEFAULT_PAD = PAD_FRONT

# Files the loader accepts (libsndfile decodes all three).
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3")

# --- Spectrogram (the tutorial's |STFT|) -------------------------------------------------------
STFT_FRAME_LENGTH = 320  # 20 ms at 16 kHz
STFT_FRAME_STEP = 32  # 2 ms
# 1 + (48,000 - 320) // 32 frames, 320 // 2 + 1 bins: the tutorial's 1491 x 257 image.
STFT_FRAMES = 1 + (CLIP_SAMPLES - STFT_FRAME_LENGTH) // STFT_FRAME_STEP
STFT_BINS = STFT_FRAME_LENGTH // 2 + 1

# --- tf.Example keys ---------------------------------------------------------------------------
AUDIO_KEY = "audio"  # float32[CLIP_SAMPLES], 16 kHz mono waveform
LABEL_KEY = "label"  # int64, 1 = Capuchinbird call, 0 = anything else
SOURCE_KEY = "source"  # bytes, the clip's file name
GROUP_KEY = "group"  # bytes, the source recording or sound the clip was cut from


def transformed_name(key: str) -> str:
    """Name of a feature after Transform (TFX convention: the `_xf` suffix)."""
    return key + "_xf"
