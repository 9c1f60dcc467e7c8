"""Model hyperparameters (TFX taxi-template style: one home, imported by model/ and pipeline/)."""

from model import features

# Architectures: the tutorial's network exactly, and the default, which scores every 40 ms of a window.
ARCHITECTURE_TUTORIAL = "tutorial"
ARCHITECTURE_DEFAULT = "default"
ARCHITECTURES = (ARCHITECTURE_DEFAULT, ARCHITECTURE_TUTORIAL)
# Each architecture reads the spectrogram it was designed for.
SPECTROGRAM_OF = {
    ARCHITECTURE_TUTORIAL: features.SPECTROGRAM_STFT,
    ARCHITECTURE_DEFAULT: features.SPECTROGRAM_LOGMEL,
}

BATCH_SIZE = 16  # the tutorial's
LEARNING_RATE = 1e-3  # Adam's default, as in the tutorial
# The default model's epoch is a fixed number of freshly augmented batches, whatever the data's size
# (the real clips' training split holds about 32 batches' worth): 20 x 32 x 16 windows.
DEFAULT_EPOCHS = 20
STEPS_PER_EPOCH = 32
# The tutorial model passes over the clips as they are, for the tutorial's 4 epochs.
TUTORIAL_EPOCHS = 4
EPOCHS = {ARCHITECTURE_DEFAULT: DEFAULT_EPOCHS, ARCHITECTURE_TUTORIAL: TUTORIAL_EPOCHS}
SEED = 42  # weights, shuffling, dropout and augmentation: same data, same model
# The default model's teacher is an ensemble: one member per seed, trained one after the other (weights,
# dropout and batches from its seed), their frame probabilities averaged; each member costs a full training
# (and, exported without a student, a scoring pass). Three count steadier than one and as well as six
# (BENCHMARKS.md, "Tried and not kept").
ENSEMBLE_SEEDS = (SEED, 7, 1234)
# Distillation (--student): after the ensemble, one network of the same shape learns the ensemble's
# frame probabilities (soft targets) on freshly augmented batches, the ensemble seeing each spectrogram
# unmasked and the student masked (noisy student). Its loss adds the frames' cross-entropy against the
# ensemble, at this weight, to the region loss on the planted truth. It then scores at a third of the cost.
STUDENT_SEED = 2027
# The student starts from the first member's trained weights (same shape) rather than from scratch: its
# distillation epochs move a trained network toward the ensemble. So started, it counted as well as its
# teacher on the k-fold benchmark (BENCHMARKS.md, "One network distilled from three").
STUDENT_WARM_START = True
STUDENT_SOFT_WEIGHT = 1.0
# Where the run has windows of unlabelled site recordings (ingestion's --unlabelled: the recordings to be
# counted), this share of the student's batches are theirs, labelled by the ensemble alone: the student
# learns the teacher's view of the site's own sound, not only of clips and planted calls.
STUDENT_UNLABELLED_SHARE = 0.25

# --- Augmentation (model/augment.py); alternatives: BENCHMARKS.md, "Tried and not kept" ----------
# Half of each batch are calls, half are not, whatever the split's balance.
# A call clip is used as recorded this often; otherwise it is planted into a background at a random
# place (at least 1 s of it inside the window), with 0.1 s fades, at a random loudness relative to
# that background (clip RMS / background RMS, in dB), as calls sit in a forest recording.
CLEAN_CALL_PROBABILITY = 0.3
PLANT_SNR_DB = (-10.0, 10.0)
PLANT_MIN_INSIDE_SECONDS = 1.0
FADE_SECONDS = 0.1
# A background is a non-call clip; this often two of them joined with a cross-fade at a random point
# (the second one up to 6 dB louder or quieter), so the edges between sounds are not calls either.
JOIN_PROBABILITY = 0.3
JOIN_GAIN_DB = 6.0
# Non-calls get a second non-call mixed under them this often, 0-20 dB quieter.
MIX_PROBABILITY = 0.7
MIX_ATTENUATION_DB = (0.0, 20.0)
# Where the run has windows of the site's own call-free recordings (ingestion's site backgrounds), a
# call is planted into one of them, and a non-call has one mixed under it, this often instead of a
# non-call clip: calls are learnt against the forest they are counted in, while the non-calls the model
# must tell apart stay the clips' (tonal birds among them).
SITE_BACKGROUND_PROBABILITY = 0.5
# Every clip: the mp3 round trip half of the time, and a random gain.
MP3_PROBABILITY = 0.5
GAIN_DB = (-20.0, 10.0)
# Recording-chain and source variation (model/augment.py), each on only when named (--augmentations), so
# each can be measured against the same training without it. Each applies to this share of the windows:
# - eq_tilt: the whole window's spectrum tilted by up to 3 dB per octave either way (microphones, housings);
# - band_pass: the window band-passed between a low edge of 50-600 Hz and a high one of 2.5-8 kHz;
# - band_noise: noise inside the call band (a random band within 300-2,500 Hz) added 0-15 dB below the window;
# - distance: a planted call low-passed (1.5-5 kHz) with a short reverb tail (0.05-0.4 s), as from afar;
# - speed: a planted call resampled 4 % faster or slower (pitch and length together).
AUGMENTATIONS = ("eq_tilt", "band_pass", "band_noise", "distance", "speed")
AUGMENTATION_PROBABILITY = 0.5
EQ_TILT_DB_PER_OCTAVE = 3.0
BAND_PASS_LOW_HZ = (50.0, 600.0)
BAND_PASS_HIGH_HZ = (2_500.0, 8_000.0)
BAND_NOISE_HZ = (300.0, 2_500.0)
BAND_NOISE_BELOW_DB = (0.0, 15.0)
DISTANCE_LOWPASS_HZ = (1_500.0, 5_000.0)
REVERB_SECONDS = (0.05, 0.4)
SPEED_CHANGE = 0.04
# SpecAugment-style masks on the spectrogram.
TIME_MASKS = 2
TIME_MASK_FRAMES = 30  # up to 0.3 s each
BAND_MASKS = 2
BAND_MASK_BANDS = 6
# Model frames this close to a planted call's edges are neither call nor background in the loss:
# the convolutions there see both.
REGION_MARGIN_SECONDS = 0.25

# The model's output name in both serving signatures (the Evaluator's prediction_key).
PREDICTION_KEY = "probability"
# Per-frame probabilities in the frame signature.
FRAME_PREDICTION_KEY = "frame_probability"
# Signature names: serialized tf.Example (Evaluator), raw 48,000-sample waveforms → window probability
# (scoring clips) and → one probability per model frame (counting window by window).
EXAMPLE_SIGNATURE = "serving_default"
AUDIO_SIGNATURE = "serve_audio"
FRAMES_SIGNATURE = "serve_frames"
# Counting a whole recording at once: waveforms → their spectrograms (the Transform graph), and a
# spectrogram of any length → one probability per model frame (the networks, run over all of it).
SPECTROGRAMS_SIGNATURE = "serve_spectrograms"
SPECTROGRAM_KEY = "spectrogram"
SEQUENCE_SIGNATURE = "serve_sequence_frames"
# And audio of any length → its log-mel spectrogram, unscaled, with the scale (features.SPECTROGRAM_*_KEY):
# counting computes a recording's log-mel once and each window's spectrogram from it.
LOG_MEL_SIGNATURE = "serve_log_mel"
LOG_MEL_KEY = "log_mel"
