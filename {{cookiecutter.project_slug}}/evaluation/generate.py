"""Generate text with a trained model, streamed to the terminal as it is produced.

    python -m evaluation.generate                                  # the prompt in llm.config.js
    python -m evaluation.generate --prompt "Once upon a time" --max-new-tokens 300
    python -m evaluation.generate --prompt "The" --temperature 0   # greedy: always the likeliest
    python -m evaluation.generate --checkpoint checkpoints/step_001000.pt --seed 1
    make generate ARGS="--prompt 'Hello'"

Defaults come from the `generation` section of llm.config.js; the checkpoint is best.pt, else the
newest step checkpoint. A base model continues text: it does not answer questions.

The library function `generate_tokens` (used by chat.py and evaluation/evaluate.py too) does:
- temperature (0 = greedy), top-k, top-p (nucleus) and a repetition penalty;
- a KV cache: the prompt is run once (prefill), then each new token costs one position;
- a context longer than model.max_length: when the window is full, it is cut to its last
  max_length // 2 tokens and continued from there (with or without the cache, the same way, so
  both give the same tokens).
"""

from __future__ import annotations

import torch_env  # noqa: F401  (first: settings that must precede `import torch`)

# isort: split

import argparse
import sys
import time
from collections.abc import Iterable, Iterator

import torch

from config import GenerationConfig, add_config_arguments, config_from_args
from errors import ConfigurationError, run_cli
from runtime.checkpoints import load_trained_model
from runtime.device import pick_device, set_threads
from tokenizer.load import eot_id, tokenizer_of

# ---- sampling ----


def apply_repetition_penalty(
    logits: torch.Tensor, context_ids: torch.Tensor, penalty: float
) -> torch.Tensor:
    """Make tokens already in the context less likely (CTRL, Keskar et al. 2019).

    A seen token's logit is divided by `penalty` when positive and multiplied by it when negative,
    so either way it moves down (for penalty > 1). logits: (V,), context_ids: (N,).
    """
    seen = torch.unique(context_ids)
    scores = logits[seen]
    logits[seen] = torch.where(scores > 0, scores / penalty, scores * penalty)
    return logits


def sample_next_token(
    logits: torch.Tensor,
    context_ids: torch.Tensor | None,
    temperature: float = 0.8,
    top_k: int = 50,
    top_p: float = 0.95,
    repetition_penalty: float = 1.0,
    generator: torch.Generator | None = None,
) -> int:
    """Pick the next token from one position's logits (V,); context_ids (N,) are the tokens the
    repetition penalty applies to."""
    logits = logits.float().clone()  # float32: top-p sums thousands of small probabilities
    if repetition_penalty != 1.0 and context_ids is not None:
        logits = apply_repetition_penalty(logits, context_ids, repetition_penalty)
    if temperature == 0:
        return int(torch.argmax(logits))  # greedy
    logits = logits / temperature
    if 0 < top_k < logits.size(-1):
        kth_best = torch.topk(logits, top_k).values[-1]
        logits[logits < kth_best] = float("-inf")  # keep the k likeliest tokens
    probs = torch.softmax(logits, dim=-1)  # (V,)
    if top_p < 1.0:
        # Nucleus: the smallest set of likeliest tokens whose probabilities sum to >= top_p.
        sorted_probs, order = torch.sort(probs, descending=True)  # (V,), (V,)
        mass_before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs  # mass of likelier tokens
        sorted_probs[mass_before >= top_p] = 0.0  # the likeliest token always stays
        probs = torch.zeros_like(probs).scatter_(0, order, sorted_probs)
    if generator is not None and generator.device != probs.device:
        probs = probs.to(generator.device)
    return int(torch.multinomial(probs, num_samples=1, generator=generator))


# ---- the generation loop ----


def generate_tokens(
    model: torch.nn.Module,
    prompt_ids: list[int],
    settings: GenerationConfig,
    use_cache: bool = True,
    stop_ids: Iterable[int] = (),
    seed: int | None = None,
    generator: torch.Generator | None = None,
) -> Iterator[int]:
    """Yield up to settings.max_new_tokens new token ids, one at a time, as they are chosen.

    `settings` (the `generation` section of llm.config.js, checked when it was made) gives
    max_new_tokens, temperature (0 = greedy: top_k/top_p then do nothing), top_k, top_p and the
    repetition penalty; its prompt is not used here. A token in stop_ids ends the generation and
    is not yielded. seed (or your own generator) makes sampling reproducible. use_cache=False
    recomputes the whole context for every token: slower, same tokens; kept as the reference.
    The model is in eval mode while generating and is put back in its previous mode afterwards.
    """
    # Checked here, not inside the generator below, so an empty prompt fails at the call.
    if not prompt_ids:
        raise ConfigurationError(
            "the prompt is empty: the model needs at least one token to continue",
            "start from the end-of-text token to generate from nothing",
        )
    if generator is None and seed is not None:
        device = next(model.parameters()).device
        generator = torch.Generator(device=device).manual_seed(seed)
    return _generate(model, list(prompt_ids), settings, use_cache, set(stop_ids), generator)


@torch.inference_mode()  # on a generator: active while it computes, not while the caller runs
def _generate(
    model: torch.nn.Module,
    ids: list[int],
    settings: GenerationConfig,
    use_cache: bool,
    stop_ids: set[int],
    generator: torch.Generator | None,
) -> Iterator[int]:
    device = next(model.parameters()).device
    max_length = model.config.max_length
    keep = max(1, max_length // 2)  # tokens kept when the context window is full

    cache = model.new_kv_cache(batch_size=1) if use_cache else None

    def next_logits(new_ids: list[int]) -> torch.Tensor:
        idx = torch.tensor([new_ids], dtype=torch.long, device=device)  # (1, T)
        logits, _ = model(idx, kv_cache=cache)  # (1, T, V)
        return logits[0, -1]  # (V,): the scores of the token that comes next

    s, max_new_tokens = settings, settings.max_new_tokens
    was_training = model.training
    model.eval()  # no dropout
    try:
        start = max(0, len(ids) - max_length)  # the context is ids[start:], <= max_length long
        logits = next_logits(ids[start:])  # prefill: the whole prompt in one pass
        for i in range(max_new_tokens):
            penalised = s.repetition_penalty != 1
            context = torch.tensor(ids[start:], device=device) if penalised else None
            token = sample_next_token(logits, context, s.temperature, s.top_k, s.top_p,
                                      s.repetition_penalty, generator)
            if token in stop_ids:
                return
            yield token
            ids.append(token)
            if i == max_new_tokens - 1:
                break  # do not run the model for a token nobody will sample
            if len(ids) - start > max_length:
                # The window is full: continue from its last half (with the cache, a new prefill).
                start = len(ids) - keep
                if cache is not None:
                    cache.reset()
                logits = next_logits(ids[start:])
            elif cache is not None:
                logits = next_logits([token])  # one position: the new token attends to the cache
            else:
                logits = next_logits(ids[start:])  # no cache: the whole context again
    finally:
        model.train(was_training)


# ---- streaming text ----


class TextStream:
    """Turn token ids into text as they arrive, ready to print.

    Decoding one token at a time is wrong in two ways: a character can span several byte-level
    tokens (an emoji is often 2-4), and some decoders join or space tokens depending on their
    neighbours (WordPiece's '##', unigram's '▁'). So decode a short window of recent tokens and
    print only what is new, holding back an incomplete character (decoded as '\ufffd') until the
    rest of it arrives.
    """

    def __init__(self, tokenizer: object, prompt_ids: list[int]) -> None:
        self.tokenizer = tokenizer
        self.ids = list(prompt_ids)
        self.prefix_offset = max(0, len(self.ids) - 5)  # some context for joining decoders
        self.read_offset = len(self.ids)  # everything before this has been printed

    def push(self, token_id: int) -> str:
        """Add one token; return the text that became printable (often '', sometimes several
        characters)."""
        self.ids.append(token_id)
        return self._emit(final=False)

    def flush(self) -> str:
        """The rest of the text, incomplete characters included (call once at the end)."""
        return self._emit(final=True)

    def _emit(self, final: bool) -> str:
        printed = self.tokenizer.decode(self.ids[self.prefix_offset : self.read_offset])
        text = self.tokenizer.decode(self.ids[self.prefix_offset :])
        if len(text) <= len(printed) or (text.endswith("\ufffd") and not final):
            return ""
        self.prefix_offset, self.read_offset = self.read_offset, len(self.ids)
        return text[len(printed) :]


# ---- command line ----


# Short options for the `generation` settings. Each is stored as its `--generation.<key>` override,
# so config.py checks it with the same rules as the value in llm.config.js.
SAMPLING_OPTIONS = {
    "prompt": ("--prompt", "text to continue"),
    "max_new_tokens": ("--max-new-tokens", "how many tokens to generate"),
    "temperature": ("--temperature", "0 = greedy; higher = more random"),
    "top_k": ("--top-k", "sample among the k likeliest tokens (0 = off)"),
    "top_p": ("--top-p", "nucleus sampling mass (1 = off)"),
    "repetition_penalty": ("--repetition-penalty", "> 1 discourages repeats"),
}


def add_sampling_options(parser: argparse.ArgumentParser, keys: Iterable[str] = SAMPLING_OPTIONS,
                         names: dict[str, str] | None = None) -> None:
    """Add `--temperature` etc. (`names` renames some, e.g. chat's --max-tokens)."""
    for key in keys:
        flag, help_text = SAMPLING_OPTIONS[key]
        parser.add_argument((names or {}).get(key, flag), dest=f"override:generation.{key}",
                            metavar="VALUE", help=f"{help_text} (default: generation.{key})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m evaluation.generate",
        description="Generate text from a trained model (defaults: generation in llm.config.js).",
    )
    add_sampling_options(parser)
    parser.add_argument("--seed", type=int, help="make sampling reproducible")
    parser.add_argument("--checkpoint", default="auto",
                        help="'auto' (best, else latest), 'best', 'latest' or a .pt path")
    parser.add_argument("--no-cache", action="store_true",
                        help="recompute the whole context for every token (slow; for checking)")
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    cfg = config_from_args(args)
    g = cfg.generation

    device = pick_device(cfg.training.device)
    if device.type == "cpu":
        set_threads(cfg.training.threads)
    model, info = load_trained_model(args.checkpoint, cfg.checkpoints.dir, device)
    tokenizer, _ = tokenizer_of(info["path"], info["tokenizer_hash"], cfg.tokenizer.path)
    eot = eot_id(tokenizer, cfg.tokenizer)
    prompt_ids = tokenizer.encode(g.prompt, add_special_tokens=False).ids or [eot]

    print(f"[{info['path']}, step {info.get('step', '?')}, {device.type}, "
          f"{'no cache' if args.no_cache else 'KV cache'}]", file=sys.stderr)
    print(g.prompt, end="", flush=True)
    stream = TextStream(tokenizer, prompt_ids)
    started, count = time.perf_counter(), 0
    for token in generate_tokens(model, prompt_ids, g, use_cache=not args.no_cache,
                                 stop_ids=(eot,), seed=args.seed):
        print(stream.push(token), end="", flush=True)
        count += 1
    print(stream.flush())
    elapsed = time.perf_counter() - started
    print(f"[{count} tokens in {elapsed:.1f}s, {count / max(elapsed, 1e-9):.1f} tokens/s]",
          file=sys.stderr)


if __name__ == "__main__":
    run_cli(main)
