"""Whisper's words back into transcript words: pieces split off a word ("-fatten" of
"flour-fatten", a lone ",") are joined to it, with timings that span both. No audio needed."""

from __future__ import annotations

from interviewer.voice.capture import Segment, turn_of
from interviewer.voice.stt import Word, _clean_words, belongs_to_previous, join_text


def test_hyphenated_word_split_by_whisper_is_joined_back() -> None:
    # as openai-whisper / faster-whisper give them: leading spaces, the hyphen glued to the piece
    raw = [
        (" I", 0.0, 0.2, 0.99),
        (" use", 0.2, 0.5, 0.98),
        (" flour", 0.5, 0.9, 0.95),
        ("-fatten", 0.9, 1.4, 0.61),
        (" daily", 1.4, 1.9, 0.97),
        (" ,", 1.9, 1.9, 0.9),
        (" well", 2.1, 2.4, 0.93),
        (" -", 2.4, 2.5, 0.8),  # a dash between spaces is a word of its own
        (" - I", 2.5, 2.8, 0.8),
        (" think", 2.8, 3.1, 0.9),
        ("?!", 3.1, 3.2, 0.7),
    ]
    words = _clean_words(raw, duration=3.5)
    assert [w.word for w in words] == [
        "I",
        "use",
        "flour-fatten",
        "daily,",
        "well",
        "-",
        "- I",
        "think?!",
    ]
    assert words[2] == Word("flour-fatten", 0.5, 1.4, 0.61)  # spans both, as sure as the less
    assert words[3] == Word("daily,", 1.4, 1.9, 0.9)
    assert " ".join(w.word for w in words).startswith("I use flour-fatten daily, well")


def test_pieces_and_words() -> None:
    assert belongs_to_previous("-fatten") and belongs_to_previous("\u2011year")
    assert belongs_to_previous(".") and belongs_to_previous("...") and belongs_to_previous(")")
    assert not belongs_to_previous("-") and not belongs_to_previous("- I")
    assert (
        not belongs_to_previous("(")
        and not belongs_to_previous("")
        and not belongs_to_previous("well")
    )
    assert (
        join_text(["a flour", "-fatten diet", "", " and more "]) == "a flour-fatten diet and more"
    )
    assert join_text(["-fatten first"]) == "-fatten first"


def test_a_word_split_across_segments_is_one_word_of_the_turn() -> None:
    first = Segment(0.0, 1.0, "I use flour", [
        {"word": "I", "start": 0.0, "end": 0.2, "probability": 0.9},
        {"word": "use", "start": 0.2, "end": 0.5, "probability": 0.9},
        {"word": "flour", "start": 0.5, "end": 0.9, "probability": 0.8},
    ])  # fmt: skip
    second = Segment(1.2, 2.0, "-fatten.", [
        {"word": "-fatten.", "start": 1.2, "end": 1.8, "probability": 0.7},
    ])  # fmt: skip
    turn = turn_of([first, second])
    assert turn.text == "I use flour-fatten."
    assert [w["word"] for w in turn.words] == ["I", "use", "flour-fatten."]
    assert turn.words[-1] == {"word": "flour-fatten.", "start": 0.5, "end": 1.8, "probability": 0.7}
    assert turn.segments == [first, second]
