"""Training examples made afresh every step, in tf.data: calls planted into busy backgrounds.

A call clip is either used as recorded or planted into a background of non-call clips at a random
place and loudness, as calls sit in a forest recording; non-calls are joined and mixed with other
non-calls. Where the run has windows of the site's own background, calls are planted into those and
they are mixed under non-calls, half of the time. Each example carries, per model frame (40 ms),
whether the call is there ("inside") and whether the frame must score as background ("outside"), so
the model learns where calls are, not just that a window holds one. Clips come as recorded or after the mp3 round trip, at random gains.
The waveform draws are stateless, keyed by (seed, example number), so they repeat run after run
whatever tf.data's parallelism; the spectrogram masks use TensorFlow's seeded generator.

Hyperparameters live in model/constants.py.
"""

import tensorflow as tf

from model import constants, features

_SAMPLES = features.CLIP_SAMPLES
_FADE = int(constants.FADE_SECONDS * features.SAMPLE_RATE)
_POSITIONS = tf.range(_SAMPLES)
# Start and end (s) of each model frame within a window.
_FRAME_STARTS = tf.range(features.MODEL_FRAMES, dtype=tf.float32) * features.MODEL_FRAME_STEP_SECONDS
_FRAME_ENDS = _FRAME_STARTS + features.MODEL_FRAME_SPAN_SECONDS
INSIDE, OUTSIDE = 0, 1  # channels of the frame targets


class _Random:
    """Stateless draws for one example: each call site passes its own salt."""

    def __init__(self, seed: int, stream: int, index: tf.Tensor):
        self._seed = tf.stack([tf.constant(seed * 1000 + stream, tf.int64), index])

    def uniform(self, salt: int, low=0.0, high=1.0, dtype=tf.float32):
        seed = self._seed + tf.constant([salt * 7919, 0], tf.int64)
        return tf.random.stateless_uniform([], seed, minval=low, maxval=high, dtype=dtype)

    def normal(self, salt: int, shape):
        return tf.random.stateless_normal(shape, self._seed + tf.constant([salt * 7919, 1], tf.int64))


def _rms(x: tf.Tensor, where=None) -> tf.Tensor:
    if where is None:
        return tf.sqrt(tf.reduce_mean(tf.square(x)) + 1e-12)
    where = tf.cast(where, x.dtype)
    return tf.sqrt(tf.reduce_sum(tf.square(x) * where) / tf.maximum(tf.reduce_sum(where), 1.0) + 1e-12)


def _decibels(db: tf.Tensor) -> tf.Tensor:
    return tf.pow(10.0, db / 20.0)


def _as_recorded_or_mp3(example, random: _Random, salt: int) -> tf.Tensor:
    """The clip as recorded, or after the mp3 round trip that ingestion stored beside it."""
    use_mp3 = random.uniform(salt) < constants.MP3_PROBABILITY
    return tf.where(use_mp3, example[features.AUDIO_MP3_KEY], example[features.AUDIO_KEY])


def _background(first, second, random: _Random) -> tf.Tensor:
    """A non-call clip, or two joined with a cross-fade at a random point."""
    a = _as_recorded_or_mp3(first, random, 10)
    b = _as_recorded_or_mp3(second, random, 11) * _decibels(random.uniform(12, -constants.JOIN_GAIN_DB,
                                                                             constants.JOIN_GAIN_DB))
    cut = random.uniform(13, features.SAMPLE_RATE // 2, _SAMPLES - features.SAMPLE_RATE // 2, tf.int32)
    weight_a = tf.clip_by_value(tf.cast(cut - _POSITIONS, tf.float32) / _FADE, 0.0, 1.0)
    joined = a * weight_a + b * (1.0 - weight_a)
    return tf.where(random.uniform(14) < constants.JOIN_PROBABILITY, joined, a)


def _frame_targets(start_s: tf.Tensor, end_s: tf.Tensor) -> tf.Tensor:
    """float32[MODEL_FRAMES, 2]: frames overlapping [start, end], and frames clear of it by the margin."""
    margin = constants.REGION_MARGIN_SECONDS
    inside = (_FRAME_ENDS > start_s) & (_FRAME_STARTS < end_s)
    near = (_FRAME_ENDS > start_s - margin) & (_FRAME_STARTS < end_s + margin)
    return tf.cast(tf.stack([inside, ~near], axis=-1), tf.float32)


def background_targets() -> tf.Tensor:
    """Targets of a window without a call: every frame is background."""
    return tf.stack([tf.zeros([features.MODEL_FRAMES]), tf.ones([features.MODEL_FRAMES])], axis=-1)


def _first_sample(audio: tf.Tensor) -> tf.Tensor:
    """The first sample after the front padding (int32)."""
    return tf.cast(tf.argmax(tf.cast(tf.abs(audio) > 0, tf.int32)), tf.int32)


def call_targets(audio: tf.Tensor) -> tf.Tensor:
    """Targets of a call clip used as it is: the call is somewhere in its non-padded part."""
    first = tf.cast(_first_sample(audio), tf.float32)
    return _frame_targets(first / features.SAMPLE_RATE, features.CLIP_SECONDS)


# --- Recording-chain and source variation (constants.AUGMENTATIONS, each on only when named) ---------

_BIN_HZ = tf.linspace(0.0, features.SAMPLE_RATE / 2.0, _SAMPLES // 2 + 1)  # the rfft bins of a window
_REVERB_SAMPLES = int(constants.REVERB_SECONDS[1] * features.SAMPLE_RATE)


def _reshaped(audio: tf.Tensor, gains: tf.Tensor) -> tf.Tensor:
    """float32[48000] with its spectrum multiplied by gains float32[bins] (smooth gains: little wrap-around)."""
    return tf.signal.irfft(tf.signal.rfft(audio) * tf.complex(gains, 0.0), fft_length=[_SAMPLES])


def _soft_step(hz: tf.Tensor, edge: tf.Tensor) -> tf.Tensor:
    """0 below `edge`, 1 above, over about a fifth of an octave."""
    return tf.sigmoid((hz - edge) / (0.07 * edge))


def _band(low: tf.Tensor, high: tf.Tensor) -> tf.Tensor:
    """Gains per rfft bin: 1 between `low` and `high` Hz, soft edges, 0 outside."""
    return _soft_step(_BIN_HZ, low) * (1.0 - _soft_step(_BIN_HZ, high))


def _sometimes(random: _Random, salt: int, altered: tf.Tensor, audio: tf.Tensor) -> tf.Tensor:
    return tf.where(random.uniform(salt) < constants.AUGMENTATION_PROBABILITY, altered, audio)


def _recording_chain(audio: tf.Tensor, random: _Random, augmentations) -> tf.Tensor:
    """A whole window as another recorder would have heard it: EQ tilt, band-pass, noise in the call band."""
    if "eq_tilt" in augmentations:
        tilt = random.uniform(30, -constants.EQ_TILT_DB_PER_OCTAVE, constants.EQ_TILT_DB_PER_OCTAVE)
        octaves = tf.math.log(tf.maximum(_BIN_HZ, 50.0) / 1000.0) / tf.math.log(2.0)
        audio = _sometimes(random, 31, _reshaped(audio, _decibels(tilt * octaves)), audio)
    if "band_pass" in augmentations:
        low, high = random.uniform(32, *constants.BAND_PASS_LOW_HZ), random.uniform(33, *constants.BAND_PASS_HIGH_HZ)
        audio = _sometimes(random, 34, _reshaped(audio, _band(low, high)), audio)
    if "band_noise" in augmentations:
        bottom, top = constants.BAND_NOISE_HZ
        low = random.uniform(35, bottom, (bottom + top) / 2)
        high = random.uniform(36, low + 200.0, top)
        noise = _reshaped(random.normal(37, [_SAMPLES]), _band(low, high))
        noise *= _rms(audio) / _rms(noise) * _decibels(-random.uniform(38, *constants.BAND_NOISE_BELOW_DB))
        audio = _sometimes(random, 39, audio + noise, audio)
    return audio


def _source_variation(clip: tf.Tensor, first_sample: tf.Tensor, random: _Random, augmentations) -> tf.Tensor:
    """A call clip as another bird or a farther one would sound: resampled a little faster or slower
    (pitch and length), low-passed with a reverb tail. The front padding stays silent."""
    recorded = _POSITIONS >= first_sample
    if "speed" in augmentations:
        rate = 1.0 + random.uniform(40, -constants.SPEED_CHANGE, constants.SPEED_CHANGE)
        source = tf.cast(first_sample, tf.float32) + tf.cast(_POSITIONS - first_sample, tf.float32) * rate
        below = tf.clip_by_value(tf.cast(tf.floor(source), tf.int32), 0, _SAMPLES - 1)
        above = tf.minimum(below + 1, _SAMPLES - 1)
        weight = source - tf.floor(source)
        resampled = tf.gather(clip, below) * (1.0 - weight) + tf.gather(clip, above) * weight
        resampled = tf.where(recorded & (source < _SAMPLES - 1), resampled, 0.0)
        clip = _sometimes(random, 41, resampled, clip)
    if "distance" in augmentations:
        cutoff = random.uniform(42, *constants.DISTANCE_LOWPASS_HZ)
        far = _reshaped(clip, 1.0 - _soft_step(_BIN_HZ, cutoff))
        # Reverb: the direct sound, then noise decaying by 60 dB over the tail's length.
        tail = random.uniform(43, *constants.REVERB_SECONDS) * features.SAMPLE_RATE
        t = tf.range(_REVERB_SAMPLES, dtype=tf.float32)
        response = random.normal(44, [_REVERB_SAMPLES]) * tf.exp(-6.9 * t / tail) * 0.1
        response = tf.tensor_scatter_nd_update(response, [[0]], [1.0])
        length = 2 * _SAMPLES  # linear, not circular, convolution
        far = tf.signal.irfft(tf.signal.rfft(far, [length]) * tf.signal.rfft(response, [length]), [length])[:_SAMPLES]
        clip = _sometimes(random, 45, tf.where(recorded, far, 0.0), clip)
    return clip


def _make_call(seed, index, call, first, second, augmentations=()):
    random = _Random(seed, 1, index)
    recorded = _as_recorded_or_mp3(call, random, 1)
    first_sample = _first_sample(recorded)
    clip = _source_variation(recorded, first_sample, random, augmentations)
    length = _SAMPLES - first_sample
    # Where the clip's first real sample lands in the window: anywhere that keeps PLANT_MIN_INSIDE_SECONDS
    # (or the whole clip, if shorter) inside.
    need = tf.minimum(length, int(constants.PLANT_MIN_INSIDE_SECONDS * features.SAMPLE_RATE))
    offset = random.uniform(2, need - length, _SAMPLES - need + 1, tf.int32)
    source = _POSITIONS - offset + first_sample
    placed = tf.where(source >= first_sample, tf.gather(clip, tf.clip_by_value(source, 0, _SAMPLES - 1)), 0.0)
    fades = tf.clip_by_value(tf.cast(_POSITIONS - offset, tf.float32) / _FADE, 0.0, 1.0) * tf.clip_by_value(
        tf.cast(offset + length - _POSITIONS, tf.float32) / _FADE, 0.0, 1.0)
    begin, end = tf.maximum(offset, 0), tf.minimum(offset + length, _SAMPLES)
    span = (_POSITIONS >= begin) & (_POSITIONS < end)
    background = _background(first, second, random)
    clip_rms = _rms(clip, _POSITIONS >= first_sample)
    gain = _rms(background, span) / clip_rms * _decibels(random.uniform(3, *constants.PLANT_SNR_DB))
    planted = background + placed * fades * gain
    as_recorded = random.uniform(4) < constants.CLEAN_CALL_PROBABILITY
    audio = tf.where(as_recorded, recorded, planted)
    to_seconds = lambda samples: tf.cast(samples, tf.float32) / features.SAMPLE_RATE  # noqa: E731
    targets = tf.where(as_recorded, call_targets(recorded), _frame_targets(to_seconds(begin), to_seconds(end)))
    return _recording_chain(audio * _decibels(random.uniform(5, *constants.GAIN_DB)), random, augmentations), targets


def _make_other(seed, index, first, second, third, augmentations=()):
    random = _Random(seed, 2, index)
    audio = _background(first, second, random)
    under = _as_recorded_or_mp3(third, random, 1)
    attenuation = _decibels(-random.uniform(2, *constants.MIX_ATTENUATION_DB))
    mixed = audio + under * _rms(audio) / _rms(under) * attenuation
    audio = tf.where(random.uniform(3) < constants.MIX_PROBABILITY, mixed, audio)
    return _recording_chain(audio * _decibels(random.uniform(5, *constants.GAIN_DB)), random, augmentations), \
        background_targets()


def is_call(example) -> tf.Tensor:
    """Whether a raw example is a Capuchinbird call (label 1)."""
    return tf.reduce_all(example[features.LABEL_KEY] == 1)


def _group_starts_with(example, prefix: str) -> tf.Tensor:
    group = tf.reshape(example[features.GROUP_KEY], [-1])[0]
    return tf.strings.substr(group, 0, len(prefix)) == prefix


def is_site(example) -> tf.Tensor:
    """Whether a raw example is a window of a site background recording (its group's prefix)."""
    return _group_starts_with(example, features.SITE_GROUP_PREFIX)


def is_unlabelled(example) -> tf.Tensor:
    """Whether a raw example is a window of an unlabelled recording (the student's alone: its label is a
    placeholder)."""
    return _group_starts_with(example, features.UNLABELLED_GROUP_PREFIX)


def labelled(examples: tf.data.Dataset) -> tf.data.Dataset:
    """The examples whose label means something (all but is_unlabelled's; all, where they have no group)."""
    if features.GROUP_KEY not in examples.element_spec:
        return examples
    return examples.filter(lambda e: tf.logical_not(is_unlabelled(e)))


def unlabelled_windows(examples: tf.data.Dataset, batch_size: int, seed: int = constants.SEED) -> tf.data.Dataset:
    """Endless batches of the unlabelled windows in `examples`, as recorded or through the mp3 round trip,
    at a random gain, with no frame targets (region_loss ignores them): the teacher labels them.

    Returns:
      (audio float32[batch, 48000], frame targets float32[batch, MODEL_FRAMES, 2], all zero) batches.
    """

    def make(index, example):
        random = _Random(seed, 3, index)
        audio = _as_recorded_or_mp3(example, random, 0) * _decibels(random.uniform(1, *constants.GAIN_DB))
        return audio, tf.zeros([features.MODEL_FRAMES, 2])

    windows = examples.filter(is_unlabelled).cache().shuffle(1024, seed=seed + 30).repeat().enumerate()
    return (windows.map(make, num_parallel_calls=tf.data.AUTOTUNE)
            .batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE))


def training_examples(examples: tf.data.Dataset, batch_size: int, seed: int = constants.SEED,
                      site: bool = False, augmentations=()) -> tf.data.Dataset:
    """Endless batches of freshly augmented training windows, half of them with a call.

    Args:
      examples: unbatched raw examples {audio, audio_mp3: float32[48000], label: int64[1], group: bytes[1]}.
      batch_size: windows per batch (even).
      seed: the same seed gives the same batches.
      site: whether `examples` hold site background windows (is_site): then calls are planted into them and
        they are mixed under non-calls, SITE_BACKGROUND_PROBABILITY of the time, and never stand alone.
      augmentations: names from constants.AUGMENTATIONS to apply as well (none by default).

    Returns:
      (audio float32[batch, 48000], frame targets float32[batch, MODEL_FRAMES, 2]) batches.
    """
    examples = labelled(examples).cache()
    calls = examples.filter(is_call)
    others = examples.filter(lambda e: tf.logical_not(is_call(e)))
    stream = lambda ds, n: ds.shuffle(1024, seed=seed + n).repeat()  # noqa: E731
    backgrounds = lambda n: stream(others, n)  # noqa: E731
    if site:
        windows = others.filter(is_site)
        others = others.filter(lambda e: tf.logical_not(is_site(e)))
        p = constants.SITE_BACKGROUND_PROBABILITY
        backgrounds = lambda n: tf.data.Dataset.sample_from_datasets(  # noqa: E731
            [stream(others, n), stream(windows, 10 + n)], [1.0 - p, p], seed=seed + 20 + n)
    with_calls = tf.data.Dataset.zip((stream(calls, 0), backgrounds(1), stream(others, 2))).enumerate()
    without = tf.data.Dataset.zip((stream(others, 3), stream(others, 4), backgrounds(5))).enumerate()
    parallel = tf.data.AUTOTUNE
    alternate = tf.data.Dataset.range(2).repeat()
    return (
        tf.data.Dataset.choose_from_datasets(
            [with_calls.map(lambda i, e: _make_call(seed, i, *e, augmentations), num_parallel_calls=parallel),
             without.map(lambda i, e: _make_other(seed, i, *e, augmentations), num_parallel_calls=parallel)],
            alternate,
        )
        .batch(batch_size, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )


def mask_spectrograms(spectrograms: tf.Tensor) -> tf.Tensor:
    """SpecAugment-style masks: random stretches of time and of bands set to 0 (the mean, after
    z-scoring). float32[batch, frames, bands] → the same shape."""
    shape = tf.shape(spectrograms)
    keep = tf.ones_like(spectrograms)
    for axis, count, widest in ((1, constants.TIME_MASKS, constants.TIME_MASK_FRAMES),
                                (2, constants.BAND_MASKS, constants.BAND_MASK_BANDS)):
        size = shape[axis]
        for _ in range(count):
            width = tf.random.uniform([shape[0], 1], 0, widest, tf.int32)
            start = tf.random.uniform([shape[0], 1], 0, size, tf.int32)
            where = tf.range(size)[None, :]
            masked = tf.cast((where >= start) & (where < start + width), spectrograms.dtype)  # [batch, size]
            keep *= 1.0 - (masked[:, :, None] if axis == 1 else masked[:, None, :])
    return spectrograms * keep
