"""Instruction tuning (`make finetune`): the chat format, the loss mask, the conversations, and a
tuning run end to end (resume, Ctrl+C, its own run folder, chat and eval on the tuned model).

    python -m pytest tests/test_finetune.py -q

bert projects skip it (an encoder is not tuned to chat: tests/test_bad_inputs.py checks the
refusal).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer

from config import load_config
from conftest import ARCHITECTURE, StopAt, prepare_project
from corpus.conversations import parse_conversation, read_conversations, split_conversations
from corpus.instructions import builtin_conversations, questions
from corpus.sample import StoryWriter
from data.finetune import ConversationBatches, chat_rows, collate_for, make_rows
from errors import DataError, TrainingError
from runtime import checkpoints
from runtime.chat_tuning import answered, normalise
from tokenizer.chat_format import ChatFormat

pytestmark = pytest.mark.skipif(ARCHITECTURE == "bert", reason="bert is not tuned to chat")

PROJECT = Path(__file__).resolve().parents[1]
EOT = load_config(PROJECT / "llm.config.js").tokenizer.special_tokens[0]
MICRO = {
    "model": {"layers": 2, "heads": 2, "kv_heads": 2, "dim": 32, "mlp_dim": 96, "max_length": 64},
    "tokenizer": {"vocab_size": 400},
    "data": {"sample_size_mb": 0.3, "stride": 64},
    "training": {"batch_size": 8, "max_steps": 20, "warmup_steps": 2, "learning_rate": 3e-3,
                 "min_lr": 3e-4, "eval_interval": 20, "eval_batches": 2, "log_interval": 1,
                 "threads": 1, "device": "cpu", "precision": "fp32"},
    "finetune": {"max_steps": 24, "batch_size": 8, "warmup_steps": 2, "learning_rate": 1e-2,
                 "min_lr": 1e-3, "eval_interval": 12, "eval_batches": 2},
    "checkpoints": {"save_interval": 8},
    "logging": {"progress_bar": False, "sample_tokens": 8},
}
NUMBERS = "one two three four five six seven eight nine ten eleven twelve".split()
CONVERSATION = [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hello there!"},
                {"role": "assistant", "content": "Hi! How can I help?"},
                {"role": "user", "content": "Tell me a story."},
                {"role": "assistant", "content": "Once upon a time, a fox found a kite."}]


def counting_conversations(count: int, seed: int = 0) -> list[dict]:
    """Short conversations with one right answer each: what comes after a number word."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        i = rng.randrange(len(NUMBERS) - 1)
        rows.append({"messages": [{"role": "user", "content": f"What comes after {NUMBERS[i]}?"},
                                  {"role": "assistant", "content": f"{NUMBERS[i + 1]}."}]})
    return rows


def write_jsonl(path: Path, rows: list) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(r if isinstance(r, str) else json.dumps(r) + "\n" for r in rows))


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A micro project with its tokenizer, data, a 20-step base model and 300 conversations."""
    folder = prepare_project(tmp_path_factory.mktemp("finetune"), MICRO)
    write_jsonl(folder / "data" / "finetune" / "counting.jsonl", counting_conversations(300))
    result = run(folder, "-m", "training.train")
    assert result.returncode == 0, result.stdout + result.stderr
    return folder


@pytest.fixture
def project(prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "run"
    subprocess.run(["cp", "-r", str(prepared), str(folder)], check=True)
    monkeypatch.chdir(folder)
    return folder


def run(folder: Path, *argv: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(PROJECT), "TOKENIZERS_PARALLELISM": "false"}
    if argv[0].endswith(".py"):
        argv = (str(PROJECT / argv[0]), *argv[1:])
    return subprocess.run([sys.executable, *argv], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=600, input=stdin)


def tokenizer_of(folder: Path) -> Tokenizer:
    return Tokenizer.from_file(str(folder / "tokenizer" / "tokenizer.json"))


# ---- the chat format: one template, ids and loss mask from one function ----


def test_the_mask_covers_the_assistant_words_and_end_of_turn_only(prepared: Path) -> None:
    tok = tokenizer_of(prepared)
    chat = ChatFormat.load(tok, PROJECT / "tokenizer" / "chat_template.jinja", EOT)
    ids, mask = chat.render(CONVERSATION)
    assert len(ids) == len(mask)
    learned = tok.decode([i for i, m in zip(ids, mask, strict=True) if m],
                         skip_special_tokens=False)
    assert learned == "Hi! How can I help?<|im_end|>Once upon a time, a fox found a kite.<|im_end|>"
    text = tok.decode(ids, skip_special_tokens=False)
    assert text.startswith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHello")
    prompt = tok.decode(chat.prompt(CONVERSATION[:4]), skip_special_tokens=False)
    assert prompt.endswith("Tell me a story.<|im_end|>\n<|im_start|>assistant\n")
    assert tok.token_to_id("<|im_end|>") in chat.stop_ids and tok.token_to_id(EOT) in chat.stop_ids


def test_the_template_renders_the_same_tokens_and_mask_in_transformers(prepared: Path) -> None:
    """The Jinja template that the HF export carries gives transformers' apply_chat_template
    exactly our ids and our loss mask (return_assistant_tokens_mask)."""
    transformers = pytest.importorskip("transformers")
    tok = tokenizer_of(prepared)
    template = (PROJECT / "tokenizer" / "chat_template.jinja").read_text()
    hf = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOT,
                                              bos_token=EOT)
    hf.chat_template = template
    chat = ChatFormat(tok, template, {"bos_token": EOT, "eos_token": EOT})
    for messages in (CONVERSATION, CONVERSATION[1:3],
                     [{"role": "user", "content": "a\n\n  b"}, {"role": "assistant", "content": ""},
                      {"role": "user", "content": "ünïcödé ✓"},
                      {"role": "assistant", "content": " spaced  out "}]):
        ids, mask = chat.render(messages)
        out = hf.apply_chat_template(messages, tokenize=True, return_dict=True,
                                     return_assistant_tokens_mask=True)
        assert out["input_ids"] == ids
        assert out["assistant_masks"] == mask
        prompt = hf.apply_chat_template(messages[:-1], tokenize=True, return_dict=True,
                                        add_generation_prompt=True)
        assert prompt["input_ids"] == chat.prompt(messages[:-1])


def test_a_template_without_generation_blocks_still_finds_the_answers(prepared: Path) -> None:
    """An imported model's template (no {% generation %}): the spans come from rendering the
    conversation turn by turn."""
    tok = tokenizer_of(prepared)
    plain = (PROJECT / "tokenizer" / "chat_template.jinja").read_text()
    plain = plain.replace("{%- generation %}", "").replace("{%- endgeneration %}", "")
    plain = plain.split("-#}", 1)[1]  # without the comment (it mentions generation blocks)
    ours = ChatFormat(tok, (PROJECT / "tokenizer" / "chat_template.jinja").read_text(),
                      {"bos_token": EOT, "eos_token": EOT})
    theirs = ChatFormat(tok, plain, {"bos_token": EOT, "eos_token": EOT})
    ids, mask = theirs.render(CONVERSATION)
    assert ids == ours.render(CONVERSATION)[0]
    # The assistant's words and end-of-turn token, as with the blocks; the newline after it too.
    learned = tok.decode([i for i, m in zip(ids, mask, strict=True) if m],
                         skip_special_tokens=False)
    assert "Hi! How can I help?<|im_end|>" in learned and "Hello there" not in learned


def test_a_tokenizer_without_the_chat_tokens_is_refused(tmp_path: Path) -> None:
    from tokenizers import models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({"a": 0, "[UNK]": 1}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    with pytest.raises(DataError, match=r"no <\|im_start\|> token"):
        ChatFormat.load(tok, PROJECT / "tokenizer" / "chat_template.jinja", EOT)


# ---- the loss: only the assistant's tokens ----


def test_no_gradient_comes_from_the_user_s_tokens(prepared: Path) -> None:
    """The logits at every position whose next token is not the assistant's get no gradient:
    nothing is learned from the user's words or the formatting."""
    if ARCHITECTURE != "gpt":
        pytest.skip("t5 learns only its output (the decoder writes nothing else)")
    from models.build import build_model

    cfg = load_config(prepared / "llm.config.js")
    tok = tokenizer_of(prepared)
    chat = ChatFormat.load(tok, PROJECT / "tokenizer" / "chat_template.jinja", EOT)
    rows, _ = chat_rows([parse_conversation(json.dumps({"messages": CONVERSATION}), "x")], chat,
                        64)
    batch = {k: torch.from_numpy(v) for k, v in collate_for("gpt", 1)(rows).items()}
    import dataclasses

    model = build_model(dataclasses.replace(cfg.model, vocab_size=tok.get_vocab_size()))
    logits, _ = model(batch["idx"])
    logits.retain_grad()
    loss = torch.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)),
                                             batch["targets"].view(-1), ignore_index=-1)
    loss.backward()
    scored = batch["targets"][0] >= 0
    grads = logits.grad[0].abs().sum(-1)
    assert (grads[~scored] == 0).all() and (grads[scored] > 0).all()
    # ... and the scored targets are exactly the mask's tokens (shifted by one).
    ids, mask = rows[0]["ids"], rows[0]["mask"]
    assert batch["targets"][0][scored].tolist() == [i for i, m in zip(ids[1:], mask[1:],
                                                                       strict=True) if m]
    _, model_loss = model(**batch)
    assert torch.allclose(model_loss, loss)


def test_rows_are_padded_one_conversation_each(prepared: Path) -> None:
    tok = tokenizer_of(prepared)
    chat = ChatFormat.load(tok, PROJECT / "tokenizer" / "chat_template.jinja", EOT)
    conversations = [parse_conversation(json.dumps(r), "x") for r in counting_conversations(5)]
    conversations.append(parse_conversation(json.dumps({"messages": CONVERSATION}), "y"))
    rows, cut = make_rows(ARCHITECTURE, conversations, chat, 48, 16)
    batch = collate_for(ARCHITECTURE, 1)(rows)
    if ARCHITECTURE == "gpt":
        assert batch["idx"].shape[0] == 6 and cut.shortened == 1  # the long one was cut to 48
        assert batch["idx"].shape[1] == 48
        lengths = [len(r["ids"]) - 1 for r in rows]
        for r, n in enumerate(lengths):  # padding is never a target
            assert (batch["targets"][r, n:] == -1).all()
    else:
        assert batch["input_ids"].shape[0] == 7  # one row per assistant turn
        assert (batch["labels"][batch["attention_mask"][:, :1].squeeze(1) >= 0] != 0).any()


# ---- the conversations ----


@pytest.mark.parametrize(("line", "message"), [
    ('{"messages": [{"role": "user", "content": "hi"}', "is not valid JSON"),
    ('[1, 2]', "is not a JSON object"),
    ('{"text": "hi"}', 'has neither "messages" nor "prompt" and "completion"'),
    ('{"messages": [{"role": "robot", "content": "hi"}]}', "has the role 'robot'"),
    ('{"messages": [{"role": "user", "content": 3}]}', "the content of message 1 is not text"),
    ('{"messages": [{"role": "user", "content": "hi"}]}', "has no assistant turn"),
    ('{"messages": []}', '"messages" must be a non-empty list'),
    ('{"prompt": "hi", "completion": ["hello"]}', 'message 1 of "completion" needs a "role"'),
])
def test_a_bad_conversation_names_its_file_and_line(tmp_path: Path, line: str,
                                                    message: str) -> None:
    write_jsonl(tmp_path / "chats.jsonl", [json.dumps({"prompt": "a", "completion": "b"}) + "\n",
                                            "\n", line + "\n"])
    with pytest.raises(DataError) as error:
        read_conversations(tmp_path)
    assert f"{tmp_path / 'chats.jsonl'}:3" in error.value.message
    assert message in error.value.message and error.value.suggestion


def test_prompt_completion_pairs_and_messages_both_read(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a" / "pairs.jsonl", [{"prompt": "2+2?", "completion": "4"}])
    write_jsonl(tmp_path / "b.jsonl", [{"messages": CONVERSATION}])
    (tmp_path / "notes.txt").write_text("not conversations")
    found = read_conversations(tmp_path)
    assert [c.messages for c in found] == [
        [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}],
        CONVERSATION]
    train, val = split_conversations(found * 20, 0.1, 1337)
    assert len(train) + len(val) == 40 and len(val) == 4


def test_the_built_in_set_asks_about_facts_its_stories_state() -> None:
    conversations = list(builtin_conversations(400, 7))
    assert conversations == list(builtin_conversations(400, 7))  # the same seed, the same set
    asked = [c for c in conversations if c.answer]
    assert len(asked) > 250
    for c in asked:
        story = c.messages[0]["content"]
        assert normalise(c.answer) in normalise(story), c.messages  # the answer is in the story
        assert answered(c.messages[-1]["content"], c.answer)
    kinds = {len(c.messages) for c in conversations}
    assert kinds == {2, 4}  # single questions and follow-ups
    requests = [c for c in conversations if c.checks]
    assert requests and all(answered(c.messages[1]["content"], w) for c in requests
                            for w in c.checks)
    # The held-out set's stories are never in the training set.
    held_out = list(builtin_conversations(100, 7, held_out=True))
    train_text = "\n".join(c.messages[0]["content"] for c in conversations)
    stories = [max(c.messages[0]["content"].split("\n\n"), key=len) for c in held_out
               if c.answer]  # (the longest paragraph: the story's opening)
    assert stories and not any(story in train_text for story in stories)


def test_questions_cover_who_what_where_and_how() -> None:
    seen = set()
    for seed in range(60):
        story, facts = StoryWriter(seed).tale()
        seen |= {q.split()[1] for q, _, _ in questions(story, facts)}
    assert {"is", "does", "thing", "place", "did", "was"} <= seen


# ---- batches: every conversation once per epoch, resumable exactly ----


def test_batches_resume_exactly_and_refuse_other_data(prepared: Path) -> None:
    tok = tokenizer_of(prepared)
    chat = ChatFormat.load(tok, PROJECT / "tokenizer" / "chat_template.jinja", EOT)
    conversations = [parse_conversation(json.dumps(r), "x") for r in counting_conversations(30)]
    rows, _ = make_rows(ARCHITECTURE, conversations, chat, 64, 16)
    collate = collate_for(ARCHITECTURE, 1)
    first = ConversationBatches(rows, 4, seed=3, collate=collate, warmup_steps=12)
    for _ in range(9):  # inside the length warm-up
        first.next_batch()
    state = first.state_dict()
    expected = [first.next_batch() for _ in range(5)]
    again = ConversationBatches(rows, 4, seed=3, collate=collate, warmup_steps=12)
    again.load_state_dict(state)
    for a, b in zip(expected, [again.next_batch() for _ in range(5)], strict=True):
        assert all(torch.equal(a[k], b[k]) for k in a)
    other = ConversationBatches(rows[:-1], 4, seed=3, collate=collate)
    with pytest.raises(TrainingError, match="not those this run was tuned on"):
        other.load_state_dict(state)
    # The length warm-up: the first batches are drawn from the shortest rows only.
    warm = ConversationBatches(rows, 4, seed=3, collate=collate, warmup_steps=100)
    assert warm.admitted() == 4 and len({int(i) for i in warm.order[:4]}) == 4
    key = "ids" if "ids" in rows[0] else "input"
    shortest = sorted(len(r[key]) for r in rows)[3]
    assert max(len(rows[i][key]) for i in warm.order[:4]) == shortest
    warm.step = 100
    assert warm.admitted() == len(rows)
    # Two processes read disjoint halves of the global batch of one.
    one = ConversationBatches(rows, 4, seed=3, collate=collate).next_batch()
    halves = [ConversationBatches(rows, 2, seed=3, collate=collate, rank=r,
                                  world_size=2).next_batch() for r in (0, 1)]
    key = next(iter(one))
    width = min(one[key].shape[1], *(h[key].shape[1] for h in halves))
    assert torch.equal(one[key][:, :width],
                       torch.cat([h[key][:, :width] for h in halves]))


# ---- a tuning run, as a user runs it ----


def finetune(*args: str, callbacks: list | None = None) -> int:
    from training.finetune import main

    return main(list(args), extra_callbacks=callbacks)


def records(folder: Path) -> list[dict]:
    path = folder / "logs" / "finetune" / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_tuning_learns_the_answers_in_its_own_run_folder(project: Path) -> None:
    base = checkpoints.file_sha256(project / "checkpoints" / "best.pt")
    assert finetune("--finetune.max_steps", "250", "--finetune.eval_interval", "50",
                    "--finetune.length_warmup", "0") == 0  # (rows of one length: no warm-up)
    folder = project / "checkpoints" / "finetune"
    assert checkpoints.verify_checkpoint(folder / "best.pt") is None
    assert checkpoints.file_sha256(project / "checkpoints" / "best.pt") == base  # untouched
    evals = [r for r in records(project) if r.get("type") == "eval"]
    assert evals[-1]["val_loss"] < evals[0]["val_loss"]
    state = checkpoints.load_checkpoint(folder / "best.pt")
    assert state["stage"] == "finetune" and "<|im_start|>" in state["chat_template"]
    assert state["finetune"]["base"] == "checkpoints/best.pt"
    assert state["finetune"]["data"] == "data/finetune (300 conversations)"
    # The tuned model answers: greedy, through the chat template, after 250 steps on 285 rows.
    from runtime.chat_tuning import answer
    from runtime.checkpoints import load_trained_model

    model, info = load_trained_model("best", folder)
    chat = ChatFormat(tokenizer_of(project), info["chat_template"],
                      {"bos_token": EOT, "eos_token": EOT})
    start = 1 if ARCHITECTURE == "t5" else None  # <pad>, T5's decoder start
    right = sum(answer(model, chat, [{"role": "user", "content": f"What comes after {n}?"}],
                       decoder_start=start).strip().rstrip(".") == NUMBERS[i + 1]
                for i, n in enumerate(NUMBERS[:-1]))
    assert right >= 6, right  # of 11 (chance: well under 1)


def test_tuning_resumes_bit_for_bit(project: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    subprocess.run(["cp", "-r", str(project), str(other)], check=True)
    assert finetune() == 0
    uninterrupted = {r["step"]: r["loss"] for r in records(project) if "loss" in r}
    os.chdir(other)
    assert finetune(callbacks=[StopAt(11)]) == 0  # SIGTERM at step 11: saves and stops
    saved = [s for s, _ in checkpoints.list_step_checkpoints(other / "checkpoints" / "finetune")]
    assert saved[-1] == 11
    with pytest.raises(TrainingError, match="already holds a training run"):
        finetune()
    assert finetune("--resume") == 0
    resumed = {r["step"]: r["loss"] for r in records(other) if "loss" in r}
    assert sorted(resumed) == list(range(1, 25)) and resumed == uninterrupted


@pytest.mark.slow
def test_chat_and_eval_use_the_tuned_model(project: Path) -> None:
    assert finetune() == 0
    result = run(project, "chat.py", "--seed", "0", stdin="What comes after two?\n")
    assert result.returncode == 0, result.stderr
    assert "Loaded checkpoints/finetune/best.pt" in result.stderr
    assert "instruction-tuned 24 steps on data/finetune (300 conversations)" in result.stderr
    assert "This model was instruction-tuned" in result.stderr
    assert result.stdout.strip()  # an answer, ended at <|im_end|>, never the marker itself
    assert "<|im_end|>" not in result.stdout and "<|im_start|>" not in result.stdout
    base = run(project, "chat.py", "--checkpoint", "checkpoints/best.pt", stdin="hi\n")
    assert "This is a " in base.stderr and "This model was instruction-tuned" not in base.stderr
    out = project / "eval.json"
    result = run(project, "-m", "evaluation.evaluate", "--chat", "--json", str(out),
                 "--samples", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.read_text())
    assert report["checkpoint"] == "checkpoints/finetune/best.pt"
    assert report["objective"] == "chat" and np.isfinite(report["metrics"]["val_loss"])


def test_a_fresh_base_run_moves_the_tuning_aside_with_it(project: Path) -> None:
    assert finetune("--finetune.max_steps", "8") == 0
    from training.train import main as train

    assert train(["--fresh", "--training.max_steps", "8"]) == 0
    archive = next((project / "checkpoints" / "previous").iterdir())
    assert (archive / "finetune" / "best.pt").is_file()
    assert (archive / "finetune-logs" / "metrics.jsonl").is_file()
    assert not (project / "checkpoints" / "finetune").exists()


@pytest.mark.slow
def test_the_export_answers_as_make_chat_does(project: Path) -> None:
    """export/hf/ of the tuned model: tokenizer.apply_chat_template + greedy generate() give
    exactly the tokens make chat writes; GGUF and the Ollama Modelfile carry the chat format."""
    if ARCHITECTURE != "gpt":
        pytest.skip("gpt's export (t5's goes to T5ForConditionalGeneration, no chat template)")
    transformers = pytest.importorskip("transformers")
    from config import GenerationConfig
    from runtime.chat_tuning import answer_tokens, prompt_ids
    from runtime.checkpoints import load_trained_model

    assert finetune("--finetune.max_steps", "40") == 0
    result = run(project, "deploy.py", "export")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "checkpoints/finetune/best.pt" in result.stdout  # the tuned model, by default
    folder = project / "export" / "hf"
    config = json.loads((folder / "tokenizer_config.json").read_text())
    assert config["chat_template"] == (PROJECT / "tokenizer" / "chat_template.jinja").read_text()
    assert (folder / "chat_template.jinja").read_text() == config["chat_template"]
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    hf_model = transformers.AutoModelForCausalLM.from_pretrained(folder).eval()
    model, info = load_trained_model("best", project / "checkpoints" / "finetune")
    chat = ChatFormat(tokenizer_of(project), info["chat_template"],
                      {"bos_token": EOT, "eos_token": EOT})
    greedy = GenerationConfig(max_new_tokens=12, temperature=0.0, top_k=0, top_p=1.0,
                              repetition_penalty=1.0)
    for question in ("What comes after three?", "What comes after nine?", "Hello!"):
        messages = [{"role": "user", "content": question}]
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                            return_dict=True, return_tensors="pt")["input_ids"]
        assert ids[0].tolist() == prompt_ids(model, chat, messages, greedy)
        out = hf_model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                max_new_tokens=12, pad_token_id=tokenizer.pad_token_id)
        theirs = out[0, ids.shape[1]:].tolist()
        ours = list(answer_tokens(model, chat, ids[0].tolist(), greedy))
        stops = json.loads((folder / "generation_config.json").read_text())["eos_token_id"]
        if theirs and theirs[-1] in stops:  # transformers keeps the end-of-turn token
            theirs = theirs[:-1]
        assert theirs == ours, (question, theirs, ours)
    result = run(project, "deploy.py", "export", "--format", "gguf")
    assert result.returncode == 0, result.stdout + result.stderr
    import gguf

    path = next((project / "export" / "gguf").glob("*.gguf"))
    reader = gguf.GGUFReader(str(path))
    field = reader.fields["tokenizer.chat_template"]
    assert bytes(field.parts[field.data[0]]).decode() == config["chat_template"]
    modelfile = (project / "export" / "gguf" / "Modelfile").read_text()
    assert "<|im_start|>{{ .Role }}" in modelfile and 'PARAMETER stop "<|im_end|>"' in modelfile
