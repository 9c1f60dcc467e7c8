"""Model hyperparameters (TFX taxi-template style: one home, imported by model/ and pipeline/)."""

from model import features

# Architectures: the tutorial's network exactly, and the cheaper default.
ARCHITECTURE_SEED = "seed"
ARCHITECTURE_DEFAULT = "default"
ARCHITECTURES = (ARCHITECTURE_DEFAULT, ARCHITECTURE_SEED)
# Each architecture reads the spectrogram it was designed for.
SPECTROGRAM_OF = {
    ARCHITECTURE_SEED: features.SPECTROGRAM_STFT,
    ARCHITECTURE_DEFAULT: features.SPECTROGRAM_LOGMEL,
}

BATCH_SIZE = 16  # the tutorial's
LEARNING_RATE = 1e-3  # Adam's default, as in the tutorial
DEFAULT_EPOCHS = 12  # on the real clips 8 epochs were unstable across seeds; 12 were not
SEED = 42  # weights, shuffling and dropout: same data, same model

# The model's output name in both serving signatures (the Evaluator's prediction_key).
PREDICTION_KEY = "probability"
# Signature names: serialized tf.Example (Evaluator) and raw 48,000-sample waveforms (counting).
EXAMPLE_SIGNATURE = "serving_default"
AUDIO_SIGNATURE = "serve_audio"
