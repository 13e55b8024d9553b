"""End of turn on real human speech: fixed silences against the product's end-of-turn policy.

    .venv/bin/python bench/turn_taking.py [--answers 40] [--models] [--tune]

Real speech only: Debian's asterisk prompts (asterisk-core-sounds-{en,fr,es,it,ru}-wav and
asterisk-prompt-it-menardi-wav; six voices, five languages). An answer is two prompts of one
voice: the first is split at a word boundary inside its phrase (whisper's word timings, cut at
the quietest 10 ms between the two words), and the three pieces are joined by two mid-answer
pauses, one inside the phrase and one between the sentences, each 0.5-2.5 s. Each simulated
applicant has a pace (their pauses spread +-0.4 s around a centre drawn from 0.9-2.1 s) and
answers four questions, so the policy can learn that pace as it does live.

For fixed thresholds (0.8, 1.2, 2.0 s) and for the policy (``interviewer.voice.turns``, run by
its own :func:`~interviewer.voice.turns.replay` over the product's VAD), without and with
take-back (``replay(take_back=True)``, as live before the last question: speech that resumes
within ``take_back_s`` of a turn's end takes the turn back; fixed silences have none):

- latency from the end of speech (VAD) to the end of the turn (median, p95; and the median
  over first answers, where the applicant's pace is not known yet);
- cut-offs: a turn ended inside a mid-answer pause and was not taken back, as a share of the
  inserted mid-answer pauses, inside phrases and between sentences ("in-prompt": a pause of the
  prompt's own, counted in the total too);
- interjections: a turn ended inside a mid-answer pause and the applicant took it back. Not a
  cut-off, but not free either: the applicant heard the agent start its reply. Share of pauses
  as above, and the median time the agent talked before the applicant resumed (pause - wait:
  an upper bound, the reply's first audio comes a little after the turn's end).

Every answer here is taken as one before the last question (the last question's reply closes
the interview and cannot be taken back: there the policy behaves as without take-back).

The policy is tuned (``--tune``) on one split (English prompts with an even name hash, and
French) and reported on the other (the other English prompts, Spanish, Italian x2, Russian),
first without take-back (the quickest setting with at most 2% cut-offs), then with it:
``take_back_wait_s`` and ``take_back_margin_s`` of that policy, the quickest median latency with
cut-offs <= 2% AND interjections <= 10% of the pauses (ties: the lower mean latency); if no
setting meets both, the trade-off table says so and the defaults are reported. Nothing is
fitted on the test split.
``--models`` compares smart-turn v3.2 with LiveKit's local end-of-turn model on complete and
cut prompts. Latency here is the policy's wait plus the measured model call; transcription is
left out for every row alike (docs/latency.md has the end-to-end figures).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gzip
import hashlib
import itertools
import json
import random
import statistics
import sys
import time
import zlib
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from interviewer.config import get_settings
from interviewer.voice.stack import build_vad
from interviewer.voice.stt import transcribe_array
from interviewer.voice.turns import (
    EndOfTurn,
    Pace,
    SmartTurn,
    TurnPolicy,
    replay,
    speech_regions,
)

SOUNDS = Path("/usr/share/asterisk/sounds")
DOCS = Path("/usr/share/doc")
RATE = 16_000
# voice: (folder, language of its reference text and of whisper)
VOICES = {
    "en": ("en_US_f_Allison", "en"),
    "fr": ("fr_CA_f_June", "fr"),
    "es": ("es_MX_f_Allison", "es"),
    "it-carlo": ("it_IT_m_Carlo", "it"),
    "it-menardi": ("it_IT_f_Menardi", "it"),
    "ru": ("ru_RU_f_IvrvoiceRU", "ru"),
}
FIXED = (0.8, 1.2, 2.0)
CACHE = Path(get_settings().data_dir) / "bench-turn-taking"


@dataclasses.dataclass
class Clip:
    voice: str
    name: str
    language: str
    audio: np.ndarray  # int16 at 16 kHz
    words: list[dict[str, float | str]]


@dataclasses.dataclass
class Answer:
    voice: str
    audio: np.ndarray
    pauses: list[tuple[float, float, str]]  # (start s, end s, "phrase" | "sentence")


def split_of(voice: str, name: str) -> str:
    if voice == "fr" or (voice == "en" and zlib.crc32(name.encode()) % 2 == 0):
        return "tune"
    return "test"


def references(language: str) -> dict[str, str]:
    path = DOCS / f"asterisk-core-sounds-{language}/core-sounds-{language}.txt.gz"
    with gzip.open(path) as f:
        text = f.read().decode("utf-8", "replace")
    out = {}
    for line in text.splitlines():
        name, sep, said = line.partition(":")
        if sep and not line.startswith(";") and not said.strip().startswith("["):
            out[name.strip()] = said.strip()
    return out


def load_clips(per_voice: int) -> list[Clip]:
    """Prompts of 7+ words, their words timed by whisper base (cached)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    clips = []
    for voice, (folder, language) in VOICES.items():
        refs = references(language)
        names = sorted(n for n, t in refs.items() if len(t.split()) >= 7)
        names = [n for n in names if (SOUNDS / folder / f"{n}.wav").is_file()]
        random.Random(voice).shuffle(names)
        for name in names[:per_voice]:
            raw, sr = sf.read(SOUNDS / folder / f"{name}.wav", dtype="int16")
            g = np.gcd(sr, RATE)
            audio = resample_poly(raw.astype(np.float32), RATE // g, sr // g)
            audio = np.clip(audio, -32768, 32767).astype(np.int16)
            key = CACHE / f"words-{voice}-{name.replace('/', '+')}.json"
            if key.is_file():
                words = json.loads(key.read_text())
            else:
                t = transcribe_array(
                    audio, backend="faster-whisper", model="base", language=language
                )
                words = [dataclasses.asdict(w) for w in t.words]
                key.write_text(json.dumps(words))
            if len(words) >= 5:
                clips.append(Clip(voice, name, language, audio, words))
    return clips


def cut_point(clip: Clip, rng: random.Random) -> int | None:
    """A sample between two words inside the phrase (2+ words on each side)."""
    w = clip.words
    k = rng.randrange(1, len(w) - 2)
    lo = int((float(w[k]["end"]) - 0.05) * RATE)
    hi = int((float(w[k + 1]["start"]) + 0.05) * RATE)
    if hi - lo < 160:
        return None
    frames = clip.audio[lo:hi].astype(np.float32)
    n = (hi - lo) // 160
    energy = (frames[: n * 160].reshape(n, 160) ** 2).mean(axis=1)
    return lo + int(np.argmin(energy)) * 160 + 80


def build_answers(clips: list[Clip], split: str, count: int, seed: int) -> list[list[Answer]]:
    """Interviews (one voice, one pace, four answers) of the split."""
    rng = random.Random(seed)
    by_voice: dict[str, list[Clip]] = {}
    for c in clips:
        if split_of(c.voice, c.name) == split:
            by_voice.setdefault(c.voice, []).append(c)
    interviews: list[list[Answer]] = []
    made = 0
    while made < count:
        for voice, pool in by_voice.items():
            if made >= count or len(pool) < 2:
                continue
            centre = rng.uniform(0.9, 2.1)
            interview = []
            for _ in range(4):
                a, b = rng.sample(pool, 2)
                cut = cut_point(a, rng)
                if cut is None:
                    continue
                p1, p2 = (min(2.5, max(0.5, rng.uniform(centre - 0.4, centre + 0.4))) for _ in "12")
                parts, pauses, t = [], [], 0.0
                for piece, pause, kind in (
                    (a.audio[:cut], p1, "phrase"),
                    (a.audio[cut:], p2, "sentence"),
                ):
                    parts += [piece, np.zeros(int(pause * RATE), np.int16)]
                    t += piece.size / RATE
                    pauses.append((t, t + pause, kind))
                    t += pause
                parts += [b.audio, np.zeros(int(4.0 * RATE), np.int16)]
                interview.append(Answer(voice, np.concatenate(parts), pauses))
                made += 1
            interviews.append(interview)
    return interviews


class CachedEndOfTurn(EndOfTurn):
    """The policy with the model's scores remembered (the same window is asked once). Without
    a model there is no score: the cache is the model's, not to be read by "no model" rows."""

    scores: ClassVar[dict[str, float]] = {}
    call_s: ClassVar[list[float]] = []

    async def probability(self, audio: np.ndarray, sample_rate: int) -> float | None:
        if self.model is None:
            return None
        key = hashlib.sha1(audio.tobytes()).hexdigest()
        if key not in self.scores:
            t = time.perf_counter()
            p = await super().probability(audio, sample_rate)
            self.call_s.append(time.perf_counter() - t)
            self.scores[key] = float(p) if p is not None else -1.0
        return self.scores[key]


class Transcriber:
    def __init__(self, language: str) -> None:
        self.language = language
        self.cache: dict[str, str] = {}

    async def __call__(self, audio: np.ndarray, sample_rate: int) -> str:
        key = hashlib.sha1(audio.tobytes()).hexdigest()
        if key not in self.cache:
            t = await asyncio.to_thread(
                transcribe_array,
                audio,
                backend="faster-whisper",
                model="base",
                language=self.language,
            )
            self.cache[key] = t.text
        return self.cache[key]


KINDS = ("phrase", "sentence", "prompt")


@dataclasses.dataclass
class Tally:
    """One rule over a set of answers."""

    pauses: dict[str, int] = dataclasses.field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    """Inserted mid-answer pauses (the shares' denominator; "prompt" stays 0)."""
    cutoffs: dict[str, int] = dataclasses.field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    interjections: dict[str, int] = dataclasses.field(
        default_factory=lambda: dict.fromkeys(KINDS, 0)
    )
    heard_s: list[float] = dataclasses.field(default_factory=list)
    """Per interjection: how long the agent talked before the applicant resumed (pause - wait)."""
    latencies: list[float] = dataclasses.field(default_factory=list)
    first_latencies: list[float] = dataclasses.field(default_factory=list)
    """The first answer of each interview: the applicant's pace is not known yet, where
    ``take_back_wait_s`` matters most (it applies until three pauses are known)."""

    @property
    def total(self) -> int:
        return sum(self.pauses.values())

    def share(self, counts: dict[str, int]) -> float:
        return sum(counts.values()) / max(1, self.total)

    def summary(self, take_back: bool) -> dict[str, Any]:
        lat = sorted(self.latencies)
        p95 = lat[min(len(lat) - 1, round(0.95 * (len(lat) - 1)))] if lat else None
        out: dict[str, Any] = {
            "median_s": round(statistics.median(lat), 2) if lat else None,
            "p95_s": round(p95, 2) if p95 is not None else None,
            "first_median_s": (
                round(statistics.median(self.first_latencies), 2) if self.first_latencies else None
            ),
            "mean_s": round(statistics.fmean(lat), 3) if lat else None,
            "cutoffs": self._count(self.cutoffs),
        }
        if take_back:
            out["interjections"] = self._count(self.interjections)
            out["heard_median_s"] = (
                round(statistics.median(self.heard_s), 2) if self.heard_s else None
            )
        else:
            out["interjections"] = "none (no take-back)"
        return out

    def _count(self, counts: dict[str, int]) -> str:
        n = sum(counts.values())
        parts = f"phrase {counts['phrase']}, sentence {counts['sentence']}"
        if counts["prompt"]:
            parts += f", in-prompt {counts['prompt']}"
        return f"{n}/{self.total} = {100 * self.share(counts):.1f}% ({parts})"


def kind_of(answer: Answer, start: float, end: float) -> str:
    """Which inserted pause the silence from ``start`` to ``end`` (VAD's, around it) is: the one
    it overlaps most, or "prompt" (a pause inside a prompt itself)."""
    best, kind = 0.0, "prompt"
    for s, e, k in answer.pauses:
        overlap = min(e, end) - max(s, start)
        if overlap > best:
            best, kind = overlap, k
    return kind


async def evaluate(
    interviews: list[list[Answer]],
    regions: dict[int, list[tuple[float, float]]],
    policy: TurnPolicy | float,
    model: SmartTurn | None,
    transcribers: dict[str, Transcriber],
    *,
    take_back: bool = False,
) -> Tally:
    """``policy`` over the interviews (a float: a fixed silence, never taken back)."""
    tally = Tally()
    for interview in interviews:
        pace = Pace()
        for index, answer in enumerate(interview):
            reg = regions[id(answer)]
            speech_end = reg[-1][1]
            for _, _, kind in answer.pauses:
                tally.pauses[kind] += 1
            if isinstance(policy, float):  # a fixed silence
                for (_, e), (s2, _) in itertools.pairwise(reg):
                    if s2 - e >= policy:
                        tally.cutoffs[kind_of(answer, e, s2)] += 1
                tally.latencies.append(policy)
                if index == 0:
                    tally.first_latencies.append(policy)
                continue
            eot = CachedEndOfTurn(policy, model)
            language = VOICES[answer.voice][1]
            out = await replay(
                answer.audio,
                RATE,
                vad_model=None,
                end_of_turn=eot,
                transcribe=transcribers[language],
                pace=pace,
                regions=reg,
                take_back=take_back,
            )
            for d in out.decisions:
                if not d["ends_turn"] or d["pause_s"] is None:
                    continue  # the pause went on, or the true end of the answer
                kind = kind_of(answer, d["speech_end_s"], d["speech_end_s"] + d["pause_s"])
                if d["taken_back"]:
                    tally.interjections[kind] += 1
                    tally.heard_s.append(d["pause_s"] - d["wait_s"])
                else:
                    tally.cutoffs[kind] += 1
            extra = statistics.median(CachedEndOfTurn.call_s) if model is not None else 0.0
            final = [t for t in out.turn_ends_s if t >= speech_end]
            tally.latencies.append(final[0] - speech_end + extra)
            if index == 0:
                tally.first_latencies.append(tally.latencies[-1])
    return tally


async def compare_models(clips: list[Clip], seed: int) -> None:
    """smart-turn v3.2 against LiveKit's local model: complete prompts against cut ones, both
    followed by 0.5 s of silence (when the policy asks)."""
    from livekit.local_inference import EOT, EOT_MAX_SAMPLES  # only for --models

    rng = random.Random(seed)
    smart, livekit = SmartTurn(), EOT()
    rows: dict[str, dict[str, list[float]]] = {"smart-turn v3.2": {}, "livekit local EOT": {}}
    times: dict[str, list[float]] = {k: [] for k in rows}
    for clip in clips:
        cut = cut_point(clip, rng)
        if cut is None:
            continue
        tail = np.zeros(int(0.5 * RATE), np.int16)
        for label, x in (("complete", clip.audio), ("cut", clip.audio[:cut])):
            x = np.concatenate([x, tail])
            for name, fn in (
                ("smart-turn v3.2", lambda a: smart.predict(a, RATE)),
                ("livekit local EOT", lambda a: livekit.predict(a[-EOT_MAX_SAMPLES:])),
            ):
                t = time.perf_counter()
                rows[name].setdefault(label, []).append(float(fn(x)))
                times[name].append(time.perf_counter() - t)
    for name, scores in rows.items():
        c, k = np.array(scores["complete"]), np.array(scores["cut"])
        auc = float(np.mean([(a > b) + 0.5 * (a == b) for a in c for b in k]))
        acc = (np.sum(c >= 0.5) + np.sum(k < 0.5)) / (c.size + k.size)
        print(
            f"{name:18} complete median {np.median(c):.2f}  cut median {np.median(k):.2f}  "
            f"AUC {auc:.3f}  accuracy@0.5 {acc:.1%}  ({c.size}+{k.size} clips)  "
            f"median call {1000 * statistics.median(times[name]):.0f} ms"
        )


QUICK = TurnPolicy(unknown_pace_wait_s=1.0, pace_margin_s=0.3)
"""A quicker trade: shorter waits while the pace is unknown and above it."""

GRID = {
    "check_after_s": (0.5, 0.8),
    "complete_at": (0.5, 0.8),
    "pace_margin_s": (0.3, 0.6),
    "unknown_pace_wait_s": (0.5, 1.5, 2.5),
    "min_unfinished_wait_s": (2.0, 3.0),
}
TAKE_BACK_GRID = {
    "take_back_wait_s": (0.5, 0.6, 0.7, 0.8, 1.0, 1.2, 1.5, 2.0),
    "take_back_margin_s": (0.0, 0.2, 0.4, 0.6),
}
MAX_CUTOFFS = 0.02
MAX_INTERJECTIONS = 0.10


async def tune(
    interviews: list[list[Answer]],
    regions: dict[int, list[tuple[float, float]]],
    model: SmartTurn,
    transcribers: dict[str, Transcriber],
) -> TurnPolicy:
    """The quickest policy (median latency) with at most 2% cut-offs on these answers (no
    take-back); if none gets there, the one with the fewest cut-offs (then the quickest)."""
    rows = []
    for values in itertools.product(*GRID.values()):
        policy = TurnPolicy(**dict(zip(GRID, values, strict=True)))
        tally = await evaluate(interviews, regions, policy, model, transcribers)
        cut, median = sum(tally.cutoffs.values()), statistics.median(tally.latencies)
        rows.append((tally.share(tally.cutoffs) > MAX_CUTOFFS, cut, median, policy, tally))
    rows.sort(key=lambda row: (row[0], row[2] if not row[0] else row[1], row[2]))
    for over, _, _, policy, tally in rows[:8]:
        knobs = {k: getattr(policy, k) for k in GRID}
        print(f"  {'over 2%' if over else 'ok'} {knobs} {tally.summary(False)}", file=sys.stderr)
    return rows[0][3]


async def tune_take_back(
    interviews: list[list[Answer]],
    regions: dict[int, list[tuple[float, float]]],
    base: TurnPolicy,
    model: SmartTurn,
    transcribers: dict[str, Transcriber],
) -> TurnPolicy | None:
    """``take_back_wait_s`` and ``take_back_margin_s`` of ``base`` with take-back: the quickest
    median latency with cut-offs <= 2% AND interjections <= 10% of the pauses (ties: the lower
    mean latency, then fewer interjections). Prints the whole trade-off table; None (and says so)
    when no setting meets both limits."""
    rows = []
    for values in itertools.product(*TAKE_BACK_GRID.values()):
        policy = dataclasses.replace(base, **dict(zip(TAKE_BACK_GRID, values, strict=True)))
        tally = await evaluate(interviews, regions, policy, model, transcribers, take_back=True)
        r = tally.summary(True)
        ok = (
            tally.share(tally.cutoffs) <= MAX_CUTOFFS
            and tally.share(tally.interjections) <= MAX_INTERJECTIONS
        )
        rows.append((policy, tally, r, ok))
    print(
        "take-back trade-off on the tune split (ok: cut-offs <= 2% and interjections <= 10%):",
        file=sys.stderr,
    )
    for policy, _, r, ok in rows:
        knobs = " ".join(f"{k} {getattr(policy, k):.1f}" for k in TAKE_BACK_GRID)
        print(
            f"  {'ok  ' if ok else 'over'} {knobs}: median {r['median_s']} / p95 {r['p95_s']} s"
            f" (first answers {r['first_median_s']} s, mean {r['mean_s']} s)"
            f" | cut-offs {r['cutoffs']} | interjections {r['interjections']},"
            f" heard median {r['heard_median_s']} s",
            file=sys.stderr,
        )
    good = [row for row in rows if row[3]]
    if not good:
        print("  no setting meets both limits: the defaults are reported", file=sys.stderr)
        return None
    good.sort(
        key=lambda row: (
            row[2]["median_s"],
            row[2]["mean_s"],
            sum(row[1].interjections.values()),
        )
    )
    return good[0][0]


def show(label: str, r: dict[str, Any]) -> None:
    line = f"  {label:32} median {r['median_s']} / p95 {r['p95_s']} s"
    line += f" (first answers {r['first_median_s']} s) | cut-offs {r['cutoffs']}"
    line += f" | interjections {r['interjections']}"
    if "heard_median_s" in r:
        line += f", heard median {r['heard_median_s']} s"
    print(line)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--answers", type=int, default=40, help="answers per split")
    ap.add_argument("--per-voice", type=int, default=30, help="prompts taken per voice")
    ap.add_argument("--models", action="store_true", help="compare the two end-of-turn models")
    ap.add_argument("--tune", action="store_true", help="grid-search the policy on the tune split")
    ap.add_argument("--seed", type=int, default=16)
    args = ap.parse_args()
    clips = load_clips(args.per_voice)
    print(f"{len(clips)} real prompts from {len(VOICES)} voices", file=sys.stderr)
    if args.models:
        await compare_models([c for c in clips if split_of(c.voice, c.name) == "test"], args.seed)
    vad_model = build_vad()
    model = SmartTurn()
    transcribers = {lang: Transcriber(lang) for _, lang in VOICES.values()}
    splits = {s: build_answers(clips, s, args.answers, args.seed) for s in ("tune", "test")}
    regions = {}
    for interviews in splits.values():
        for interview in interviews:
            for answer in interview:
                regions[id(answer)] = await speech_regions(answer.audio, RATE, vad_model)
    default = TurnPolicy()
    tuned_back: TurnPolicy | None = None
    if args.tune:
        default = await tune(splits["tune"], regions, model, transcribers)
        print(f"tuned on the tune split: {default}")
        tuned_back = await tune_take_back(splits["tune"], regions, default, model, transcribers)
        if tuned_back is None:
            print("take-back: no setting met cut-offs <= 2% and interjections <= 10%")
        else:
            knobs = {k: getattr(tuned_back, k) for k in TAKE_BACK_GRID}
            print(f"take-back tuned on the tune split: {knobs}")
    rules: list[tuple[str, TurnPolicy | float, SmartTurn | None, bool]] = [
        *((f"fixed {t:.1f} s", t, None, False) for t in FIXED),
        ("policy (smart-turn)", default, model, False),
        ("policy, no model", default, None, False),
        ("quicker policy", QUICK, model, False),
        ("policy + take-back (smart-turn)", default, model, True),
        ("policy + take-back, no model", default, None, True),
        ("quicker policy + take-back", QUICK, model, True),
    ]
    if tuned_back is not None:
        rules.append(("tuned take-back (smart-turn)", tuned_back, model, True))
    for split, interviews in splits.items():
        n = sum(len(i) for i in interviews)
        print(f"\n{split} split: {n} answers, {2 * n} mid-answer pauses")
        for label, policy, m, take_back in rules:
            tally = await evaluate(
                interviews, regions, policy, m, transcribers, take_back=take_back
            )
            show(label, tally.summary(take_back))
    if CachedEndOfTurn.call_s:
        calls = sorted(CachedEndOfTurn.call_s)
        print(
            f"\nsmart-turn call: median {1000 * statistics.median(calls):.0f} ms, "
            f"p95 {1000 * calls[int(0.95 * (len(calls) - 1))]:.0f} ms ({len(calls)} calls)"
        )


if __name__ == "__main__":
    asyncio.run(main())
