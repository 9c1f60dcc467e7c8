"""The exported model's serving signatures: each takes raw input and runs the Transform graph first, so
callers (the Evaluator, clip scoring, counting) never compute spectrograms themselves.
"""

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from model import constants, features, preprocessing

_AUDIO_XF = features.AUDIO_XF_KEY


def serving_signatures(model: keras.Model, tf_transform_output: tft.TFTransformOutput) -> dict:
    """tf.Example → probability (for the Evaluator); raw waveforms → probability (scoring clips);
    raw waveforms → one probability per model frame (counting; the 'tutorial' model has one frame).
    Frame models also get the two halves of the last apart (spectrograms; networks over a spectrogram),
    and, where Transform gives the spectrogram's scale, the log-mel of audio of any length.
    """
    model.tft_layer = tf_transform_output.transform_features_layer()  # tracked, so it is saved
    frame_probability = getattr(model, "frame_probability", None)

    def spectrograms(raw_features):
        return model.tft_layer(raw_features)[_AUDIO_XF]

    audio_spec = {features.AUDIO_KEY: tf_transform_output.raw_feature_spec()[features.AUDIO_KEY]}
    audio_input = tf.TensorSpec([None, features.CLIP_SAMPLES], tf.float32, name="audio")

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_examples(serialized):
        raw = tf.io.parse_example(serialized, audio_spec)
        return {constants.PREDICTION_KEY: model({_AUDIO_XF: spectrograms(raw)})}

    @tf.function(input_signature=[audio_input])
    def serve_audio(audio):
        return {constants.PREDICTION_KEY: model({_AUDIO_XF: spectrograms({features.AUDIO_KEY: audio})})}

    @tf.function(input_signature=[audio_input])
    def serve_frames(audio):
        spectrogram = spectrograms({features.AUDIO_KEY: audio})
        if frame_probability is None:
            frames = model({_AUDIO_XF: spectrogram})  # [batch, 1]: the window is the frame
        else:
            frames = frame_probability({_AUDIO_XF: spectrogram})[:, :, 0]  # [batch, 74]
        return {constants.FRAME_PREDICTION_KEY: frames}

    signatures = {constants.EXAMPLE_SIGNATURE: serve_examples, constants.AUDIO_SIGNATURE: serve_audio,
                  constants.FRAMES_SIGNATURE: serve_frames}
    if frame_probability is None:
        return signatures

    # Counting (components/counting/scorer.py) runs the two halves of serve_frames apart: the spectrograms of
    # the windows, then the networks once over the spectrogram of the whole recording stitched from them,
    # instead of once per overlapping window.
    @tf.function(input_signature=[audio_input])
    def serve_spectrograms(audio):
        return {constants.SPECTROGRAM_KEY: spectrograms({features.AUDIO_KEY: audio})}  # [batch, 297, 48]

    bands = tf_transform_output.transformed_feature_spec()[_AUDIO_XF].shape[-1]

    @tf.function(input_signature=[tf.TensorSpec([None, None, bands], tf.float32, name=constants.SPECTROGRAM_KEY)])
    def serve_sequence_frames(spectrogram):  # [batch, frames, 48] → [batch, frames // 4]
        return {constants.FRAME_PREDICTION_KEY: frame_probability({_AUDIO_XF: spectrogram})[:, :, 0]}

    signatures.update({constants.SPECTROGRAMS_SIGNATURE: serve_spectrograms,
                       constants.SEQUENCE_SIGNATURE: serve_sequence_frames})
    if features.SPECTROGRAM_MEAN_KEY not in tf_transform_output.transformed_feature_spec():
        return signatures

    # Counting can also compute a recording's log-mel once, rather than once in each of the two windows
    # that overlap at every moment, and remove each window's band medians and scale it itself: the
    # log-mel step below is the Transform graph's own function, and its scale the Transform's.
    scale = model.tft_layer({features.AUDIO_KEY: tf.zeros([1, features.CLIP_SAMPLES])})
    mean = tf.constant(scale[features.SPECTROGRAM_MEAN_KEY][0])
    std = tf.constant(scale[features.SPECTROGRAM_STD_KEY][0])

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name="audio")])
    def serve_log_mel(audio):  # [batch, samples] → [batch, 1 + (samples - 512) // 160, 48]
        return {constants.LOG_MEL_KEY: preprocessing.log_mel(audio),
                features.SPECTROGRAM_MEAN_KEY: mean, features.SPECTROGRAM_STD_KEY: std}

    signatures[constants.LOG_MEL_SIGNATURE] = serve_log_mel
    return signatures
