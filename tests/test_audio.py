"""components/audio.py: every format, rate and channel count → 16 kHz mono at the right pitch."""

import os

import numpy as np
import pytest

from components import audio
from model import features
from tests.helpers import dominant_frequency, tone, write_audio

RATE = features.SAMPLE_RATE

FORMATS = [
    ("wav", 8_000, 1),
    ("wav", 44_100, 2),
    ("wav", 96_000, 1),
    ("flac", 11_025, 1),
    ("flac", 48_000, 6),
    ("mp3", 22_050, 1),
    ("mp3", 44_100, 2),
    ("mp3", 48_000, 2),
]


@pytest.mark.parametrize("extension,rate,channels", FORMATS)
def test_decodes_any_format_rate_and_channels_to_16k_mono_at_the_same_pitch(tmp_path, extension, rate, channels):
    path = write_audio(str(tmp_path / f"tone.{extension}"), tone(1_000, 2.0, rate, channels), rate)

    samples = audio.load_audio(path)

    assert samples.dtype == np.float32 and samples.ndim == 1
    # mp3 frames may add or drop a few ms at the edges; lossless formats are exact to the sample.
    tolerance = 0.03 * RATE if extension == "mp3" else 1
    assert abs(len(samples) - 2 * RATE) <= tolerance
    assert dominant_frequency(samples, RATE) == pytest.approx(1_000, abs=2)
    middle = samples[RATE // 2 : RATE + RATE // 2]
    level_tolerance = 0.1 if extension == "mp3" else 0.02  # mp3 at 128 kbit/s loses ~0.5 dB here
    assert np.sqrt(np.mean(middle**2)) == pytest.approx(0.5 / np.sqrt(2), rel=level_tolerance)


def test_channels_are_averaged(tmp_path):
    stereo = tone(1_000, 1.0, 44_100, channels=2, amplitude=0.8)
    stereo[:, 1] = 0.0
    samples = audio.load_audio(write_audio(str(tmp_path / "left_only.wav"), stereo, 44_100))
    assert np.max(np.abs(samples[1000:-1000])) == pytest.approx(0.4, abs=0.01)


def test_mp3_round_trip_keeps_length_timing_and_pitch_but_changes_the_samples():
    clip = tone(700, 3.0, RATE)[:, 0]
    clip[: RATE // 2] = 0.0  # a silent start shows any delay the codec adds
    back = audio.mp3_round_trip(clip)
    assert back.shape == clip.shape and back.dtype == np.float32
    assert np.abs(back[: RATE // 2 - 200]).max() < 0.01  # still silent: no delay
    assert np.corrcoef(clip[RATE:], back[RATE:])[0, 1] > 0.98
    assert not np.array_equal(clip, back)
    assert dominant_frequency(back, RATE) == pytest.approx(700, abs=5)


def test_resampling_keeps_tones_below_nyquist_and_removes_those_above():
    rate = 48_000
    t = np.arange(rate) / rate
    below, above = np.sin(2 * np.pi * 3_000 * t), np.sin(2 * np.pi * 11_000 * t)  # 11 kHz > 8 kHz Nyquist
    out = audio.resample((below + above).astype(np.float32), rate, RATE)
    spectrum = np.abs(np.fft.rfft(out[1000:-1000]))
    freqs = np.fft.rfftfreq(len(out) - 2000, 1 / RATE)
    assert len(out) == RATE
    assert freqs[np.argmax(spectrum)] == pytest.approx(3_000, abs=2)
    # No alias of 11 kHz (it would fold to 5 kHz) above -60 dB of the kept tone.
    alias = spectrum[(freqs > 4_900) & (freqs < 5_100)].max()
    assert alias < spectrum.max() * 1e-3


def test_short_clips_are_zero_padded_at_the_front_by_default():
    short = np.ones(10_000, dtype=np.float32)
    clip = audio.fixed_length(short)
    assert clip.shape == (features.CLIP_SAMPLES,)
    assert np.all(clip[: features.CLIP_SAMPLES - 10_000] == 0) and np.all(clip[-10_000:] == 1)


def test_padding_at_the_back_is_a_parameter():
    clip = audio.fixed_length(np.ones(10_000, dtype=np.float32), pad=features.PAD_BACK)
    assert np.all(clip[:10_000] == 1) and np.all(clip[10_000:] == 0)


def test_long_clips_keep_their_first_three_seconds():
    ramp = np.arange(100_000, dtype=np.float32)
    clip = audio.fixed_length(ramp)
    assert clip.shape == (features.CLIP_SAMPLES,) and clip[0] == 0 and clip[-1] == features.CLIP_SAMPLES - 1


def test_load_clip_of_a_one_second_file_is_padded_not_an_error(tmp_path):
    path = write_audio(str(tmp_path / "short.flac"), tone(500, 1.0, 44_100), 44_100)
    clip = audio.load_clip(path)
    assert clip.shape == (features.CLIP_SAMPLES,)
    assert np.all(clip[: 2 * RATE - 10] == 0) and np.abs(clip[-RATE:]).max() > 0.4


def test_unknown_padding_is_rejected():
    with pytest.raises(ValueError, match="pad must be"):
        audio.fixed_length(np.ones(10, dtype=np.float32), pad="middle")


def _flac_bytes(tmp_path) -> bytes:
    return open(write_audio(str(tmp_path / "good.flac"), tone(500, 1.0, 44_100), 44_100), "rb").read()


@pytest.mark.parametrize(
    "name,make_content,reason",
    [
        ("empty.wav", lambda tmp: b"", "empty file"),
        ("text.mp3", lambda tmp: b"this is not audio\n" * 100, "not audio"),
        ("text.wav", lambda tmp: b"RIFF but not really a wave file", "not audio"),
        ("corrupt.flac", lambda tmp: _flac_bytes(tmp)[:300] + os.urandom(20_000), "corrupt"),
        ("notes.txt", lambda tmp: b"field notes", "unsupported file type '.txt'"),
    ],
)
def test_bad_files_raise_an_error_naming_the_file_and_the_reason(tmp_path, name, make_content, reason):
    path = tmp_path / name
    path.write_bytes(make_content(tmp_path))
    with pytest.raises(audio.AudioLoadError) as raised:
        audio.load_audio(str(path))
    assert reason in raised.value.reason
    assert str(path) in str(raised.value)


def test_an_mp3_with_damaged_data_after_its_header_is_always_an_error(tmp_path):
    # mpg123 resyncs through damaged data: depending on the bytes it fails, returns garbage far beyond
    # full scale, or pads out the length its header promised. Every case must be an error.
    good = open(write_audio(str(tmp_path / "good.mp3"), tone(700, 60.0, 48_000, channels=2), 48_000), "rb").read()
    for seed in range(20):
        path = tmp_path / f"damaged{seed}.mp3"
        path.write_bytes(good[:400] + np.random.default_rng(seed).bytes(50_000))
        with pytest.raises(audio.AudioLoadError, match="corrupt"):
            audio.load_audio(str(path))


def test_a_missing_file_is_unreadable(tmp_path):
    with pytest.raises(audio.AudioLoadError, match="unreadable"):
        audio.load_audio(str(tmp_path / "nowhere.wav"))


def test_a_header_without_frames_is_empty(tmp_path):
    path = write_audio(str(tmp_path / "header_only.wav"), np.zeros((0, 1), dtype=np.float32), 16_000)
    with pytest.raises(audio.AudioLoadError, match="no audio frames"):
        audio.load_audio(path)


def test_streamed_decoding_matches_resampling_the_whole_file_at_once(tmp_path):
    rate = 48_000
    rng = np.random.default_rng(1)
    stereo = (0.2 * rng.standard_normal((25 * rate, 2))).astype(np.float32)  # several decode blocks long
    path = str(tmp_path / "long.flac")
    import soundfile as sf

    sf.write(path, stereo, rate, subtype="PCM_24")
    decoded, _ = sf.read(path, dtype="float32")
    whole = audio.resample(decoded.mean(axis=1), rate, RATE)
    streamed = audio.load_audio(path)
    assert len(streamed) == len(whole) == 25 * RATE
    assert np.max(np.abs(streamed - whole)) < 1e-3


@pytest.mark.parametrize("extension,rate,channels", [(".wav", 16_000, 1), (".flac", 44_100, 2), (".mp3", 48_000, 2)])
def test_a_range_decodes_to_the_whole_file_samples_and_measuring_gives_its_length_and_loudness(
        tmp_path, extension, rate, channels):
    rng = np.random.default_rng(3)
    noise = rng.normal(0, 0.05, (25 * rate, channels)).astype(np.float32)
    data = tone(700, 25.0, rate, channels, amplitude=0.3) + noise
    path = write_audio(str(tmp_path / f"long{extension}"), data, rate)  # several decode blocks long
    whole = audio.load_audio(path)
    length = audio.measure_audio(path)
    assert length.num_samples == len(whole) == 25 * RATE
    assert length.rms == pytest.approx(np.sqrt(np.mean(whole.astype(np.float64) ** 2)), rel=1e-6)
    n = len(whole)
    # From the start, across decode blocks, up to the end, and asking past the end.
    ranges = [(0, 5_000), (123_457, 300_001), (20 * RATE + 3, 24 * RATE + 11), (n - 7_000, n), (n - 9, n + 50)]
    for begin, end in ranges:
        part = audio.load_range(path, begin, end)
        assert len(part) == len(whole[begin:end])
        if rate == RATE:
            np.testing.assert_array_equal(part, whole[begin:end])
        else:  # resampled from another start: soxr's float32 rounding
            np.testing.assert_allclose(part, whole[begin:end], rtol=0, atol=1e-6)


@pytest.mark.parametrize("name,content,reason", [("empty.wav", b"", "empty file"),
                                                 ("text.mp3", b"not audio\n" * 100, "not audio")])
def test_measuring_a_bad_file_raises_what_loading_it_does(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(audio.AudioLoadError, match=reason):
        audio.measure_audio(str(path))
