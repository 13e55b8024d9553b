"""False-positive rate of the audio and text proctoring detectors on clean interviews.

    .venv/bin/python bench/proctoring.py [--voices en-us en-gb en-us+f4] [--banks law ...]
                                         [--no-stt] [--model-dir DIR]

Clean interviews: for every bank with demo answers (question_banks/demo_answers/*.yaml) and
every espeak-ng voice, one "applicant" who speaks the practice answer and every question's
strong answer in that one voice. Nothing in them is suspicious, so every event raised is a
false positive. Per answer:

- speaker change: voice prints vs that applicant's practice answer (and, as a positive control,
  the same answer whose second half is spoken by the next voice in --voices: the detection rate);
- background voice and reading pattern: need word timings, so each WAV is transcribed with
  whisper tiny.en through faster-whisper (``--no-stt`` skips them). Onset latencies are drawn
  from a fixed-seed mix with 25 % long thinking pauses (6-15 s), so the "long wait" part of
  the reading rule is exercised on speech that is not read;
- text: near-duplicates among the strong/average/weak answers to each question (three different
  "applicants" on one topic), and every demo answer against the bank's reference answer.

Caveat: espeak-ng voices are perfectly steady, real voices are not; a low rate here is a
necessary condition, not evidence of the rate on people. The machine is shared: timings vary.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pickle
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import mfcc_voiceprints as mfcc  # the old detector, bench-only
import numpy as np
import speakers_data as speech
import torch
import yaml

from interviewer.proctoring import duplicates as dup
from interviewer.proctoring import speakers, voices
from interviewer.proctoring.events import EventKind, severity_of
from interviewer.proctoring.thresholds import ProctoringThresholds
from interviewer.voice.tts import render_with_espeak_binary

BANKS = Path(__file__).parent.parent / "question_banks"
RATE_WPM = 160


@dataclass
class Tally:
    checked: int = 0
    raised: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, raised: bool, what: str) -> None:
        self.checked += 1
        if raised:
            self.raised += 1
            if len(self.examples) < 5:
                self.examples.append(what)

    def line(self, name: str) -> str:
        rate = self.raised / self.checked if self.checked else float("nan")
        if name.endswith("(detected)"):  # positives: ``raised`` counts misses
            found = self.checked - self.raised
            return f"{name:42s} {found:4d} / {self.checked:4d}   {found / self.checked:6.1%}"
        return f"{name:42s} {self.raised:4d} / {self.checked:4d}   {rate:6.1%}"


def render(folder: Path, voice: str, text: str) -> Path:
    path = folder / f"{abs(hash((voice, text))):x}.wav"
    if not path.exists():
        render_with_espeak_binary(text, voice, RATE_WPM, path)
    return path


STT_BACKEND = "faster-whisper"  # CTranslate2 int8: several times faster than torch on CPU


def words_of(path: Path) -> list[dict]:
    from interviewer.voice.stt import transcribe_file

    transcript = transcribe_file(path, backend=STT_BACKEND, model="tiny.en")
    return [{"word": w.word, "start": w.start, "end": w.end} for w in transcript.words]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--voices", nargs="+", default=["en-us", "en-gb", "en-us+f4"])
    parser.add_argument("--banks", nargs="*", help="bank ids (default: all with demo answers)")
    parser.add_argument("--no-stt", action="store_true", help="skip whisper (and its detectors)")
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--speakers-only", action="store_true", help="only who is speaking")
    parser.add_argument("--per-language", type=int, default=12, help="answers per speaker")
    parser.add_argument("--answer-s", type=float, default=40.0, help="length of an answer")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: busy machine)")
    parser.add_argument(
        "--cache", type=Path, help="keep the embedded cases here (re-runs only re-score them)"
    )
    args = parser.parse_args()
    speakers_bench(args)
    if args.speakers_only:
        return

    t = ProctoringThresholds()
    rng = random.Random(7)
    demo_files = sorted((BANKS / "demo_answers").glob("*.yaml"))
    demos = [yaml.safe_load(p.read_text()) for p in demo_files]
    demos = [d for d in demos if not args.banks or d["bank_id"] in args.banks]
    tallies = {
        name: Tally()
        for name in (
            "background_voice (clean)",
            "reading_pattern (clean)",
            "duplicate_answer (clean)",
            "reference_match (clean)",
        )
    }
    started = time.perf_counter()
    audio_s = 0.0
    with tempfile.TemporaryDirectory(prefix="proctoring-bench-") as tmp:
        folder = Path(tmp)
        for demo in demos:
            bank_id = demo["bank_id"]
            for voice in args.voices:
                practice_path = render(folder, voice, demo["practice"]["strong"])
                practice_signal = voices.read_wav(practice_path)
                audio_s += len(practice_signal) / voices.SAMPLE_RATE
                practice_delivery = None
                if not args.no_stt:
                    practice_delivery = voices.delivery(words_of(practice_path), 0.8)
                for qid, levels in demo["answers"].items():
                    where = f"{bank_id}/{qid}/{voice}"
                    path = render(folder, voice, levels["strong"])
                    signal = voices.read_wav(path)
                    audio_s += len(signal) / voices.SAMPLE_RATE
                    if args.no_stt:
                        continue
                    words = words_of(path)
                    background = voices.background_voice(
                        signal, words, below_db=t.background_voice_below_db
                    )
                    raised = severity_of(EventKind.background_voice, background.seconds, t)
                    tallies["background_voice (clean)"].add(
                        raised is not None, f"{where} {background.seconds}s"
                    )
                    onset = rng.uniform(6, 15) if rng.random() < 0.25 else rng.uniform(0.4, 2.5)
                    pattern = voices.reading_pattern(
                        voices.delivery(words, onset),
                        practice_delivery,
                        onset_min_s=t.reading_onset_min_s,
                        onset_ratio=t.reading_onset_ratio,
                        rate_ratio=t.reading_rate_ratio,
                        pause_cv_ratio=t.reading_pause_cv_ratio,
                    )
                    tallies["reading_pattern (clean)"].add(pattern is not None, where)

        # --- text ------------------------------------------------------------------------------
        embed = dup.embedder(args.model_dir)
        for demo in demos:
            bank = yaml.safe_load((BANKS / f"{demo['bank_id']}.yaml").read_text())
            references = {q["id"]: q["reference_answer"] for q in bank["questions"]}
            for qid, levels in demo["answers"].items():
                answers = [
                    dup.AnswerText(i + 1, i + 1, i + 1, qid, levels[level])
                    for i, level in enumerate(("strong", "average", "weak"))
                ]
                for answer in answers:
                    others = [o for o in answers if o is not answer]
                    where = f"{demo['bank_id']}/{qid}/{answer.answer_id}"
                    found = dup.find_duplicates([answer], others, t, embed)
                    tallies["duplicate_answer (clean)"].add(bool(found), where)
                    refs = dup.reference_matches([answer], references, t, embed)
                    tallies["reference_match (clean)"].add(bool(refs), where)

    elapsed = time.perf_counter() - started
    print(f"banks: {', '.join(d['bank_id'] for d in demos)}; voices: {', '.join(args.voices)}")
    print(f"{audio_s / 60:.1f} min of clean speech; {elapsed:.0f} s; load {os.getloadavg()[0]:.1f}")
    print(f"{'detector':42s} raised / checked   rate")
    for name, tally in tallies.items():
        if tally.checked:
            print(tally.line(name))
            for example in tally.examples:
                print(f"    e.g. {example}")


# --- who is speaking: real speech, old detector against new ---------------------------------------


@dataclass
class Case:
    language: str
    clip: speech.Clip
    practice: str  # whose practice answer it is compared with
    new: speakers.Windows
    old: mfcc.Windows


def _cases(half: int, per_language: int, seconds: float, encoder: speakers.SpeakerEncoder):
    """Clean answers, answers a second speaker joins for >= 3 s, and practice answers."""
    rng = random.Random(17 + half)
    files = {lang: speech.prompts(lang, half) for lang in speech.LANGUAGES}
    practice = {}
    for lang in speech.LANGUAGES:
        clip = speech.answer(files[lang], 25.0, rng)
        practice[lang] = (speakers.windows(encoder, clip.signal), mfcc.voice_prints(clip.signal))
    clean, mixed = [], []
    for lang in speech.LANGUAGES:
        others = [o for o in speech.LANGUAGES if speech.different(lang, o)]
        for n in range(per_language):
            for clip, into in (
                (speech.answer(files[lang], seconds, rng), clean),
                (
                    speech.joined(
                        files[lang],
                        files[others[n % len(others)]],
                        seconds,
                        rng.uniform(3.0, 6.0),
                        rng,
                    ),
                    mixed,
                ),
            ):
                new = speakers.windows(encoder, clip.signal)
                into.append(Case(lang, clip, lang, new, mfcc.voice_prints(clip.signal)))
    return practice, clean, mixed


def _new_flags(case: Case, practice, window: float, standin: float, t: ProctoringThresholds):
    return speakers.second_voice(
        case.new,
        practice[case.practice][0].voice(),
        window_similarity=window,
        standin_similarity=standin,
        min_segment_s=t.speaker_min_segment_s,
    )


def _old_flags(case: Case, practice, t: ProctoringThresholds):
    return mfcc.speaker_changes(
        case.old,
        practice[case.practice][1],
        distance=mfcc.OLD_DISTANCE,
        min_segment_s=t.speaker_min_segment_s,
    )


def _score(clean, mixed, standins, flags) -> tuple[float, float, float]:
    """False flags per hour of clean answers, recall of joins, recall of stand-ins."""
    hours = sum(c.clip.seconds for c in clean) / 3600
    false = sum(len(flags(c)) for c in clean) / hours
    found = 0
    for c in mixed:
        start, end = c.clip.joined
        found += any(s.start_s < end and s.end_s > start for s in flags(c))
    caught = sum(bool(flags(c)) for c in standins)
    return false, found / len(mixed), caught / len(standins)


def _window_sims(case: Case, practice) -> np.ndarray:
    """What the detector compares with its threshold, per window (smoothed)."""
    spans = speakers.spans(case.new)
    sims = spans.vectors @ speakers.dominant_voice(case.new.vectors)
    return np.maximum(sims, spans.vectors @ practice[case.practice][0].voice())


def _similarities(practice, clean, mixed) -> None:
    """Where one person and two people score: windows, and whole voice prints."""
    same = np.concatenate([_window_sims(c, practice) for c in clean])
    guest = []
    for c in mixed:
        start, end = c.clip.joined
        spans = speakers.spans(c.new)
        inside = (spans.starts >= start) & (spans.ends <= end)
        guest += list(_window_sims(c, practice)[inside])
    print(
        f"window similarity, one person: min {same.min():.3f}, 0.1 % {np.percentile(same, 0.1):.3f}"
        f", 1 % {np.percentile(same, 1):.3f}, median {np.median(same):.3f} ({len(same)} windows)"
    )
    if guest:
        print(
            f"window similarity, a second person wholly inside the window: median "
            f"{np.median(guest):.3f}, 99 % {np.percentile(guest, 99):.3f} ({len(guest)} windows)"
        )
    one, two = [], []
    for c in clean:
        for lang, (windows, _) in practice.items():
            sim = float(c.new.voice() @ windows.voice())
            (one if not speech.different(c.language, lang) else two).append(sim)
    print(
        f"voice prints (an answer against a practice answer): one person min {min(one):.3f} "
        f"median {np.median(one):.3f}; two people max {max(two):.3f} median {np.median(two):.3f}"
    )


def speakers_bench(args: argparse.Namespace) -> None:
    t = ProctoringThresholds()
    encoder = speakers.SpeakerEncoder.load(args.model_dir)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    sets = {}
    cache = args.cache
    if cache is not None and cache.exists():
        sets = pickle.loads(cache.read_bytes())  # written by this bench, below
    for half, name in ((0, "tune"), (1, "report")):
        if name in sets:
            continue
        practice, clean, mixed = _cases(half, args.per_language, args.answer_s, encoder)
        # a stand-in: someone else's clean answer against this applicant's practice answer
        standins = [
            dataclasses.replace(c, practice=p)
            for c in clean[:: max(1, args.per_language // 3)]
            for p in speech.LANGUAGES
            if speech.different(c.language, p)
        ]
        sets[name] = (practice, clean, mixed, standins)
    if cache is not None:
        cache.write_bytes(pickle.dumps(sets))
    practice, clean, mixed, standins = sets["tune"]
    grid = [(w, s) for w in np.arange(0.50, 0.91, 0.025) for s in np.arange(0.55, 0.91, 0.025)]
    scored = []
    for w, s in grid:
        false, recall, standin = _score(
            clean,
            mixed,
            standins,
            lambda c, w=w, s=s, p=practice: _new_flags(c, p, w, s, t),
        )
        scored.append((false, -(recall + standin), w, s, recall, standin))
    # among thresholds with no false flag on the tuning half: the window threshold that finds
    # the most joins, the lowest of those (flagging an honest applicant is worse than missing a
    # prompter); then, at that window threshold, the stand-in threshold that finds the most
    # stand-ins, again the lowest of those
    clean_rows = [r for r in scored if r[0] == 0] or scored
    window = min(clean_rows, key=lambda r: (-r[4], r[2]))[2]
    best = min((r for r in clean_rows if r[2] == window), key=lambda r: (-r[5], r[3]))
    print(
        f"tuned on the first half of each language's prompts: window {best[2]:.3f}, "
        f"stand-in {best[3]:.3f} (tune: {best[0]:.2f} false/h, joins {best[4]:.1%}, "
        f"stand-ins {best[5]:.1%})"
    )
    print(
        f"product defaults: window {t.speaker_window_similarity}, "
        f"stand-in {t.speaker_standin_similarity}"
    )
    for name, (practice, clean, mixed, standins) in sets.items():
        hours = sum(c.clip.seconds for c in clean) / 3600
        print(
            f"\n{name} half: {len(clean)} clean answers ({hours:.2f} h), {len(mixed)} with a "
            f"second speaker joining 3-6 s, {len(standins)} stand-ins"
        )
        _similarities(practice, clean, mixed)
        print(f"{'detector':34s} {'false flags/h':>14s} {'joins found':>12s} {'stand-ins':>10s}")
        rows = {
            "old (MFCC prints, distance 2.5)": lambda c, p=practice: _old_flags(c, p, t),
            "new (GE2E, product defaults)": lambda c, p=practice: _new_flags(
                c, p, t.speaker_window_similarity, t.speaker_standin_similarity, t
            ),
        }
        for label, flags in rows.items():
            false, recall, standin = _score(clean, mixed, standins, flags)
            print(f"{label:34s} {false:14.2f} {recall:12.1%} {standin:10.1%}")
    print(f"\n{time.perf_counter() - started:.0f} s; load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
