"""Use a trained model from the command line: gpt writes text after a prompt, streamed as it is
produced; bert fills in the prompt's [MASK]s; t5 fills in the prompt's <extra_id_N> spans, or
answers a plain input (text to text).

    python -m evaluation.generate                                  # the prompt in llm.config.js
    python -m evaluation.generate --prompt "Once upon a time" --max-new-tokens 300     # gpt
    python -m evaluation.generate --prompt "The" --temperature 0   # greedy: always the likeliest
    python -m evaluation.generate --prompt "The [MASK] sat on the mat." --top-k 5      # bert
    python -m evaluation.generate --prompt "The cat <extra_id_0> the mat."              # t5
    python -m evaluation.generate --checkpoint checkpoints/step_001000.pt --seed 1
    make generate ARGS="--prompt 'Hello'"

Defaults come from the `generation` section of llm.config.js; the checkpoint is best.pt, else the
newest step checkpoint. A base model continues text: it does not answer questions.

The sampling itself (temperature, top-k, top-p, repetition penalty, the KV cache, contexts
longer than model.max_length) is `generate_tokens` in runtime/sampling.py (gpt), which chat.py,
compare.py and training's sample generations use too; t5's decoding is runtime/seq2seq.py, bert's
mask filling runtime/fill_mask.py.
"""

from __future__ import annotations

import torch_env  # noqa: F401  (first: settings that must precede `import torch`)

# isort: split

import argparse
import sys
import time
from collections.abc import Iterable, Iterator

import torch
from tokenizers import Tokenizer

from config import Config, add_config_arguments, config_from_args
from errors import run_cli
from runtime.checkpoints import load_trained_model
from runtime.device import pick_device, set_threads
from tokenizer.load import eot_id, tokenizer_of

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
    "top_k": ("--top-k", "sample among the k likeliest tokens (0 = off; bert: how many "
                         "candidates to show for each [MASK])"),
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


# ---- what each architecture does with the prompt ----


def write_text(model: torch.nn.Module, tokenizer: Tokenizer, cfg: Config,
               args: argparse.Namespace) -> None:
    """gpt: stream the prompt's continuation."""
    from runtime.sampling import generate_tokens

    g = cfg.generation
    eot = eot_id(tokenizer, cfg.tokenizer)
    prompt_ids = tokenizer.encode(g.prompt, add_special_tokens=False).ids or [eot]
    print(g.prompt, end="", flush=True)
    tokens = generate_tokens(model, prompt_ids, g, use_cache=not args.no_cache,
                             stop_ids=(eot,), seed=args.seed)
    stream_out(tokens, TextStream(tokenizer, prompt_ids))


def fill_masks(model: torch.nn.Module, tokenizer: Tokenizer, cfg: Config,
               args: argparse.Namespace) -> None:
    """bert: the prompt with its [MASK]s filled in, and each mask's likeliest tokens."""
    from runtime.fill_mask import fill_masks as fill
    from runtime.objectives import bert_special_ids

    ids = bert_special_ids(tokenizer)
    fills = fill(model, tokenizer, cfg.generation.prompt, ids["[MASK]"], ids["[CLS]"],
                 ids["[SEP]"], top_k=max(1, cfg.generation.top_k))
    print(fills.text)
    for i, candidates in enumerate(fills.candidates, 1):
        shown = "  ".join(f"{c.text!r} {c.probability:.3f}" for c in candidates)
        print(f"  [MASK] {i}: {shown}")


def write_output(model: torch.nn.Module, tokenizer: Tokenizer, cfg: Config,
                 args: argparse.Namespace) -> None:
    """t5: the prompt's sentinels filled in; a prompt without one: the output, streamed."""
    from runtime.objectives import t5_special_ids
    from runtime.seq2seq import SENTINEL, encode_input, fill_spans, generate_seq2seq

    g, ids = cfg.generation, t5_special_ids(cfg, tokenizer)
    generator = torch.Generator(device=next(model.parameters()).device).manual_seed(args.seed) \
        if args.seed is not None else None
    if SENTINEL.search(g.prompt):
        spans = fill_spans(model, tokenizer, g.prompt, g, ids["start"], ids["eos"],
                           ids["sentinels"], generator)
        print(spans.text)
        for number, text in spans.spans.items():
            print(f"  <extra_id_{number}>: {text!r}")
        return
    input_ids = encode_input(tokenizer, g.prompt, ids["eos"], model.config.max_length)
    tokens = generate_seq2seq(model, input_ids, g, ids["start"], (ids["eos"],),
                              use_cache=not args.no_cache, generator=generator)
    stream_out(tokens, TextStream(tokenizer, []))


def stream_out(tokens: Iterator[int], stream: TextStream) -> None:
    """Print tokens as text as they come, then how fast they came (on stderr)."""
    started, count = time.perf_counter(), 0
    for token in tokens:
        print(stream.push(token), end="", flush=True)
        count += 1
    print(stream.flush())
    elapsed = time.perf_counter() - started
    print(f"[{count} tokens in {elapsed:.1f}s, {count / max(elapsed, 1e-9):.1f} tokens/s]",
          file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m evaluation.generate",
        description="Use the trained model on a prompt (defaults: generation in llm.config.js): "
                    "gpt continues it, bert fills its [MASK]s, t5 fills its <extra_id_N> spans "
                    "or answers it.",
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

    device = pick_device(cfg.training.device)
    if device.type == "cpu":
        set_threads(cfg.training.threads)
    model, info = load_trained_model(args.checkpoint, cfg.checkpoints.dir, device)
    tokenizer, _ = tokenizer_of(info["path"], info["tokenizer_hash"], cfg.tokenizer.path)
    architecture = model.config.architecture
    cached = "" if architecture == "bert" else ", no cache" if args.no_cache else ", KV cache"
    print(f"[{info['path']}, step {info.get('step', '?')}, {architecture}, {device.type}"
          f"{cached}]", file=sys.stderr)
    if architecture == "bert":
        fill_masks(model, tokenizer, cfg, args)
    elif architecture == "t5":
        write_output(model, tokenizer, cfg, args)
    else:
        write_text(model, tokenizer, cfg, args)


if __name__ == "__main__":
    run_cli(main)
