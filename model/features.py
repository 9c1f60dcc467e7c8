"""The one home for the numbers every stage shares: audio format, windows, spectrograms, feature keys.

Ingestion, the Transform graph, training and the counting job all import from here, so a clip
means the same thing everywhere. Imports no TensorFlow, so light tools and tests can use it.
"""

import math

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

# Call-free recordings of the site become non-call windows (backgrounds for planted calls in training),
# one 3 s window every 6 s: neighbouring windows are alike, so every other one is enough (the real
# site's 15 recordings give 450).
SITE_WINDOW_STEP_SECONDS = 6.0
# Their group: the recording's name after this prefix.
SITE_GROUP_PREFIX = "site-"
# Unlabelled recordings of the site (for the student: --student's noisy-student windows) are cut the same
# way, into groups of this prefix.
UNLABELLED_GROUP_PREFIX = "unlabelled-"

# Files the loader accepts (libsndfile decodes all three).
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3")
# Counting decodes an mp3 (libmpg123, components/mpg123.py) only up to the highest frequency its model reads:
# at the file's rate halved or quartered (MPG123_DOWN_SAMPLE 1 or 2), the lowest that stays above twice that.
# A 48 kHz recording: 12 kHz for the log-mel (to MEL_UPPER_HZ), 24 kHz for the tutorial's |STFT| (to 8 kHz).
MP3_MAX_DOWN_SAMPLE = 2
FULL_BAND_HZ = SAMPLE_RATE / 2

# --- Spectrogram (the tutorial's |STFT|) -------------------------------------------------------
STFT_FRAME_LENGTH = 320  # 20 ms at 16 kHz
STFT_FRAME_STEP = 32  # 2 ms
# tf.signal.stft's default FFT size: the next power of two above the frame, zero-padded.
STFT_FFT_LENGTH = 512
# 1 + (48,000 - 320) // 32 frames, 512 // 2 + 1 bins (31.25 Hz apart): the tutorial's 1491 x 257 image.
STFT_FRAMES = 1 + (CLIP_SAMPLES - STFT_FRAME_LENGTH) // STFT_FRAME_STEP
STFT_BINS = STFT_FFT_LENGTH // 2 + 1

# --- Spectrogram (the default: band-limited log-mel) -------------------------------------------
# 32 ms frames every 10 ms: ~30x fewer values than the tutorial's |STFT| and enough time resolution
# for 1-2.5 s calls.
MEL_FRAME_LENGTH = 512
MEL_FRAME_STEP = 160
MEL_FRAMES = 1 + (CLIP_SAMPLES - MEL_FRAME_LENGTH) // MEL_FRAME_STEP  # 297
MEL_BANDS = 48
# Calls sit at 300 Hz-3 kHz. The cap also keeps out the band above ~5 kHz that 128 kbit/s mp3
# recordings lose, so a model trained on lossless clips does not see mp3 as "different".
MEL_LOWER_HZ = 125.0
MEL_UPPER_HZ = 5_000.0
# The STFT bins that carry mel weight: 0 to MEL_UPPER_HZ (31.25 Hz apart), 161 of the 257. The log-mel
# takes only these, for the same values (tests/test_model.py).
MEL_STFT_BINS = int(MEL_UPPER_HZ * MEL_FRAME_LENGTH / SAMPLE_RATE) + 1
# Added before the log so silence maps to a finite floor.
LOG_OFFSET = 1e-6

# --- Model frames ----------------------------------------------------------------------------
# The default model scores every 40 ms of a window, not just the window: its convolutions pool time by
# 4, so 297 log-mel frames become 74 model frames. Model frame t covers log-mel frames 4t..4t+3.
MODEL_FRAME_POOLING = 4
MODEL_FRAMES = MEL_FRAMES // MODEL_FRAME_POOLING  # 74
MODEL_FRAME_STEP_SECONDS = MODEL_FRAME_POOLING * MEL_FRAME_STEP / SAMPLE_RATE  # 0.04
MODEL_FRAME_SPAN_SECONDS = ((MODEL_FRAME_POOLING - 1) * MEL_FRAME_STEP + MEL_FRAME_LENGTH) / SAMPLE_RATE

# --- Counting --------------------------------------------------------------------------------
# Recordings are scored in 3 s windows every 1.5 s: each call is seen whole by at least one window.
# The tutorial's non-overlapping windows are HOP_SECONDS = CLIP_SECONDS.
HOP_SECONDS = 1.5
# The tutorial's decision threshold, used when a model carries no threshold chosen on eval.
TUTORIAL_THRESHOLD = 0.99
# ThresholdSelector takes the threshold that gets the fewest eval clips wrong (false alarms + missed
# calls). Thresholds within THRESHOLD_TIE_CLIPS clips of the fewest tie, and of those it takes the one
# nearest PREFERRED_THRESHOLD (0.5: also where the Evaluator gates the model): eval clips are clean, and
# one loud non-call clip would otherwise push the threshold above the quiet calls of busy recordings.
# It is the counting operating point only where the site has no background to calibrate on.
PREFERRED_THRESHOLD = 0.5
THRESHOLD_TIE_CLIPS = 1
# With a frame-scoring model, a call is a run of frames at or above the threshold. Runs less than
# CALL_GAP_SECONDS apart are one call (a call's score can dip for a moment); runs shorter than
# MIN_CALL_SECONDS are not calls (a Capuchinbird call lasts 1.5-4 s; most false alarms are short
# sounds). Site calibration may choose another rule (BENCHMARKS.md, "Site calibration").
CALL_GAP_SECONDS = 1.0
MIN_CALL_SECONDS = 1.0

# --- Site calibration (components/calibration.py) ---------------------------------------------
# The counting operating point is chosen on the site's own audio: eval calls planted into call-free
# background recordings of the site, counted at every candidate below, and the plain backgrounds counted
# for false calls. Candidate thresholds are evenly spaced in log-odds, 0.011 to 0.989.
CALIBRATION_THRESHOLDS = tuple(round(1 / (1 + math.exp(-x / 4)), 4) for x in range(-18, 19))
# Candidate merging rules (frame-scoring models): the gap that still joins two runs into one call,
# and the shortest call. The defaults above win ties. Calibration chooses the threshold only (with the
# default rule): choosing the rule too counted no better on the k-fold benchmark (BENCHMARKS.md, "Site
# calibration"), where it split calls with gaps of 0.3 s.
CALIBRATE_MERGING_RULE = False
CALIBRATION_GAPS_SECONDS = (0.3, 0.6, CALL_GAP_SECONDS)
CALIBRATION_MIN_CALL_SECONDS = (0.5, 0.75, MIN_CALL_SECONDS)
# Planted recordings: this many, each as long as its background or this long at most, with 0-8 calls
# from faint (10 dB under the background) to loud (6 dB over). A quarter of the calls follow the
# previous one back to back (0.3-2 s), a third after 2-6 s, the rest after 6-30 s.
CALIBRATION_RECORDINGS = 30
CALIBRATION_RECORDING_SECONDS = 180.0
CALIBRATION_MAX_CALLS = 8
CALIBRATION_SNR_DB = (-10.0, 6.0)
CALIBRATION_GAPS_S = ((0.25, 0.3, 2.0), (0.35, 2.0, 6.0), (0.4, 6.0, 30.0))
CALIBRATION_SEED = 0
# Of the operating points with the fewest wrong calls (missed + extra + false), the middle of the tied
# thresholds wins: it keeps the most distance from both missed and false calls (components/
# calibration.py says why). No tolerance: a one-call tolerance traded a real miss for that distance
# (BENCHMARKS.md, "Site calibration").
CALIBRATION_TIE_CALLS = 0
# Without call-free background (count_calls.py --calibrate), the recordings to be counted give it:
# up to this many of them, spread over the list, are cut into stretches of this length, and the stretches
# whose peak score is in the lower half, and below the model's own threshold, are the background; at
# least a minute of it.
SELF_CALIBRATION_RECORDINGS = 12
SELF_CALIBRATION_STRETCH_SECONDS = 30.0
SELF_CALIBRATION_QUANTILE = 0.5
SELF_CALIBRATION_MIN_SECONDS = 60.0

# Which spectrogram a model uses: the tutorial's |STFT| ('stft') or the log-mel default ('logmel').
SPECTROGRAM_STFT = "stft"
SPECTROGRAM_LOGMEL = "logmel"

# --- tf.Example keys ---------------------------------------------------------------------------
AUDIO_KEY = "audio"  # float32[CLIP_SAMPLES], 16 kHz mono waveform
# The same clip after a round trip through 128 kbit/s mp3 at 48 kHz, the forest recordings' codec:
# training alternates between the two so the model does not tell calls by their codec.
AUDIO_MP3_KEY = "audio_mp3"
LABEL_KEY = "label"  # int64, 1 = Capuchinbird call, 0 = anything else
SOURCE_KEY = "source"  # bytes, the clip's file name
GROUP_KEY = "group"  # bytes, the source recording or sound the clip was cut from


def transformed_name(key: str) -> str:
    """Name of a feature after Transform (TFX convention: the `_xf` suffix)."""
    return key + "_xf"


AUDIO_XF_KEY = transformed_name(AUDIO_KEY)  # the spectrogram Transform makes of `audio`
# The log-mel spectrogram's z-score over the training set (its mean and standard deviation), given with
# every transformed example: counting computes a whole recording's log-mel once and scales it itself.
SPECTROGRAM_MEAN_KEY = "spectrogram_mean"
SPECTROGRAM_STD_KEY = "spectrogram_std"
