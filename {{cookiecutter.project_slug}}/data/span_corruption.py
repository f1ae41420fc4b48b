"""T5's objective: cut random spans out of each window; the model writes them back.

    make_batch = SpanCorruption(noise_density=0.15, mean_span_length=3.0,
                                sentinel_ids=[5, 6, 7, ...], eos_id=0, decoder_start_id=1)
    raw, targets = make_batch.lengths(max_length=256)          # (284, 58): window, output length
    batches = TrainBatches(tokens, batch_size=16, window=raw, seed=1337, make_batch=make_batch)
    batch = batches.next_batch()   # {"input_ids": (16, 256), "decoder_input_ids": (16, 58),
                                   #  "labels": (16, 58)}

A window of `raw` tokens loses noise_density of its tokens (rounded), in spans of
mean_span_length tokens on average. The encoder's input is what is left, with each span
replaced by its sentinel (<extra_id_0> for the first span, <extra_id_1> for the next, ...), and
the end-of-text token; the output (labels) is each sentinel followed by the span it stands for,
then the end-of-text token:

    window:  The cat sat on the mat and looked out of the window .
    input:   The cat <extra_id_0> the mat and looked <extra_id_1> the window . </s>
    labels:  <extra_id_0> sat on <extra_id_1> out of </s>

`decoder_input_ids` is labels shifted right by one, starting with the decoder's start token (the
padding token, as in T5). The window length is chosen so that the input is exactly max_length
tokens; every row has the same numbers of spans and tokens, so no padding is needed. Span
lengths are random (a random partition of the noise tokens into that many spans, and of the other
tokens likewise), as in T5's random_spans_noise_mask.

Every random choice is drawn from the generator it is given (TrainBatches' own: a resumed run
drops the same spans; a fixed-seed one for evaluation). numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from errors import ConfigurationError


class SpanCorruption:
    """Windows of tokens -> {"input_ids", "decoder_input_ids", "labels"} (module docstring)."""

    def __init__(self, noise_density: float, mean_span_length: float, sentinel_ids: Sequence[int],
                 eos_id: int, decoder_start_id: int) -> None:
        self.noise_density = noise_density
        self.mean_span_length = mean_span_length
        self.sentinel_ids = np.asarray(sentinel_ids, dtype=np.int64)
        self.eos_id, self.decoder_start_id = eos_id, decoder_start_id

    def counts(self, raw: int) -> tuple[int, int]:
        """(noise tokens, spans) cut from a window of `raw` tokens (T5's rounding rules)."""
        noise = min(max(round(raw * self.noise_density), 1), raw - 1)
        spans = max(1, round(min(noise, raw - noise) / self.mean_span_length))
        return noise, spans

    def sizes(self, raw: int) -> tuple[int, int]:
        """(input length, output length) for a window of `raw` tokens."""
        noise, spans = self.counts(raw)
        return raw - noise + spans + 1, noise + spans + 1  # + 1: the end-of-text token

    def lengths(self, max_length: int) -> tuple[int, int]:
        """(window, output length): the longest window whose input fits in max_length tokens.
        ConfigurationError if it needs more sentinels than the tokenizer has."""
        raw = max_length
        while raw > 2 and self.sizes(raw)[0] > max_length:  # spans of ~1 token: one sentinel each
            raw -= 1
        while self.sizes(raw + 1)[0] <= max_length:
            raw += 1
        spans = self.counts(raw)[1]
        if spans > len(self.sentinel_ids):
            raise ConfigurationError(
                f"span corruption cuts {spans} spans from each window of {raw} tokens, but the "
                f"tokenizer has only {len(self.sentinel_ids)} sentinel tokens",
                f"set tokenizer.sentinel_tokens to {max(100, spans)} or more, then "
                "`make tokenizer data`")
        return raw, self.sizes(raw)[1]

    def __call__(self, windows: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        B, raw = windows.shape
        noise, spans = self.counts(raw)
        if spans > len(self.sentinel_ids):  # a longer window than lengths() allows
            raise ConfigurationError(f"{spans} spans need more sentinel tokens than the "
                                     f"{len(self.sentinel_ids)} of the tokenizer",
                                     "raise tokenizer.sentinel_tokens")
        # Span lengths: alternate kept and noise spans, starting with kept tokens.
        kept_lengths = random_partition(raw - noise, spans, B, rng)  # (B, spans)
        noise_lengths = random_partition(noise, spans, B, rng)  # (B, spans)
        lengths = np.stack([kept_lengths, noise_lengths], axis=2).reshape(B, 2 * spans)
        # Segment number of each position: even = kept, odd = noise (segment 2k + 1 = span k).
        starts = np.zeros((B, raw), dtype=np.int64)
        np.put_along_axis(starts, np.cumsum(lengths, axis=1)[:, :-1], 1, axis=1)
        segment = np.cumsum(starts, axis=1)  # (B, raw)
        is_noise = segment % 2 == 1
        first_of_span = is_noise & (starts == 1)  # (B, raw): where a span begins
        sentinel = self.sentinel_ids[np.minimum(segment // 2, spans - 1)]  # (B, raw)

        # Input: kept tokens, and one sentinel in place of each span. Every row keeps the same
        # number of positions, so the selection reshapes back to (B, raw - noise + spans).
        keep = ~is_noise | first_of_span
        inputs = np.where(is_noise, sentinel, windows)[keep].reshape(B, -1)
        # Output: for each position, the sentinel slot (filled where a span begins) then the
        # token slot (filled for noise tokens): (B, raw, 2) -> the filled slots in order.
        slots = np.stack([sentinel, windows], axis=2)  # (B, raw, 2)
        filled = np.stack([first_of_span, is_noise], axis=2)  # (B, raw, 2)
        targets = slots[filled].reshape(B, -1)  # (B, noise + spans)

        eos = np.full((B, 1), self.eos_id, dtype=np.int64)
        labels = np.concatenate([targets, eos], axis=1)  # (B, noise + spans + 1)
        start = np.full((B, 1), self.decoder_start_id, dtype=np.int64)
        return {"input_ids": np.concatenate([inputs, eos], axis=1),
                "decoder_input_ids": np.concatenate([start, labels[:, :-1]], axis=1),
                "labels": labels}


def random_partition(items: int, parts: int, rows: int, rng: np.random.Generator) -> np.ndarray:
    """(rows, parts) random lengths >= 1 that add up to `items` in each row: `parts - 1` cut
    points chosen without repetition among the `items - 1` gaps between items."""
    cuts = rng.random((rows, items - 1)).argsort(axis=1)[:, : parts - 1] + 1  # (rows, parts-1)
    edges = np.concatenate([np.zeros((rows, 1), dtype=np.int64), np.sort(cuts, axis=1),
                            np.full((rows, 1), items, dtype=np.int64)], axis=1)
    return np.diff(edges, axis=1)  # (rows, parts)
