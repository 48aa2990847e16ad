"""motion.alignment: pocketsphinx forced alignment against CMU ARCTIC's hand-checked phone labels, GRID names."""
import numpy as np
import pytest

from motion.alignment import (AlignmentError, PhoneInterval, force_align, grid_transcript, onset_errors,
                              phones_at_frames, read_htk_lab)
from motion.audio import load_audio
from tests.conftest import DATA

TEST_AUDIO = DATA / "test_audio"
needs_audio = pytest.mark.skipif(not TEST_AUDIO.is_dir(),
                                 reason=f"real test audio not available ({TEST_AUDIO} is absent: no ../shared)")
A0009_TEXT = "He turned sharply, and faced Gregson across the table."


@needs_audio
def test_forced_alignment_matches_arctic_labels():
    y = load_audio(TEST_AUDIO / "cmu_arctic_a0009.wav")
    ref = read_htk_lab(TEST_AUDIO / "cmu_arctic_a0009_phone.lab")
    hyp = force_align(y, A0009_TEXT)
    speech = [p.phone for p in ref if p.phone != "SIL"]
    assert len(speech) == 38 and speech[:4] == ["HH", "IY", "T", "ER"] and speech[-5:] == ["T", "EY", "B", "AH", "L"]
    err = onset_errors(hyp, ref)
    # Measured: all 38 phones matched, median onset error 10 ms, mean 12 ms, 90th percentile 25 ms.
    assert len(err) == 38
    assert np.median(err) <= 0.030
    assert np.percentile(err, 90) <= 0.040
    assert all(b.start_s >= a.start_s for a, b in zip(hyp, hyp[1:]))


@needs_audio
def test_alignment_is_a_function_of_its_input():
    y = load_audio(TEST_AUDIO / "cmu_arctic_a0009.wav")
    other = load_audio(TEST_AUDIO / "cmu_arctic_a0007.wav")
    first = force_align(y, A0009_TEXT)
    force_align(other[: len(other) // 2], "the")  # whatever the decoder saw before ...
    assert force_align(y, A0009_TEXT) == first    # ... does not change the next alignment


@needs_audio
def test_alignment_errors_are_raised_not_guessed():
    y = load_audio(TEST_AUDIO / "cmu_arctic_a0009.wav")
    with pytest.raises(AlignmentError, match="not in the pronunciation dictionary"):
        force_align(y, "qzxv blorptastic")
    with pytest.raises(AlignmentError):
        force_align(y, " ,. ")


def test_grid_transcripts_from_file_names():
    assert grid_transcript("bbaf2n") == "bin blue at f. two now"
    assert grid_transcript("id2_vcd_swwp2s") == "set white with p. two soon"
    assert grid_transcript("lwbsza") == "lay white by s. zero again"
    assert grid_transcript("pwij3p") == "place white in j. three please"
    assert grid_transcript("bbaw2n") is None       # GRID has no letter W
    assert grid_transcript("xbaf2n") is None
    assert grid_transcript("Obama_clip1") is None


def test_phones_at_frames_uses_frame_centres():
    ph = [PhoneInterval("SIL", 0.0, 0.1), PhoneInterval("M", 0.1, 0.2), PhoneInterval("AA", 0.2, 0.5)]
    lab = phones_at_frames(ph, 20, fps=30.0)
    assert lab[:3] == ["SIL"] * 3 and lab[3:6] == ["M"] * 3 and lab[6:15] == ["AA"] * 9 and lab[15:] == ["SIL"] * 5


def test_onset_errors_skip_substitutions():
    ref = [PhoneInterval("SIL", 0, 0.1), PhoneInterval("B", 0.1, 0.2), PhoneInterval("IH", 0.2, 0.3),
           PhoneInterval("N", 0.3, 0.4)]
    hyp = [PhoneInterval("B", 0.12, 0.2), PhoneInterval("EH", 0.2, 0.3), PhoneInterval("N", 0.29, 0.4)]
    np.testing.assert_allclose(onset_errors(hyp, ref), [0.02, 0.01])
