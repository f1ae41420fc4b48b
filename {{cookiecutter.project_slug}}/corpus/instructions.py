"""The built-in instruction set: conversations about the built-in stories, made from a seed.

When data/finetune/ is empty, `make finetune` tunes the model on these, so a fresh project can be
taught to answer without any download. Nothing is written to disk: the same seed always gives the
same conversations, and the held-out ones (validation, `make eval ARGS=--chat`) come from story
seeds that the training ones never use.

    python -m corpus.instructions --head 5            # print five conversations as JSON lines
    python -m corpus.instructions --out data/finetune/builtin.jsonl --count 2000

Four kinds, mixed:
- a short story in the user's turn and a question whose answer is a fact the story states (who it
  is about, what the hero is, where they live, what they like to do, who else is in it, what
  thing or place it names, how the hero felt, what they lost or fear): the assistant answers in
  one sentence that holds the fact, which is what `answer_accuracy` scores;
- the same, with a second question in a follow-up turn;
- requests ("Tell me a story about a dragon and a ball"): the assistant tells one with both;
- greetings and small talk.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections.abc import Iterator

from corpus.conversations import Conversation
from corpus.sample import ANIMALS, FEELINGS_BAD, FEELINGS_GOOD, THINGS, StoryWriter, article

# Share of each kind of conversation.
# (A request's answer is a whole story: many more tokens than a question's, so a small share
# of them already weighs as much in the loss as the questions.)
MIX = (("question", 0.7), ("follow_up", 0.15), ("request", 0.07), ("small_talk", 0.08))
FEELINGS = set(FEELINGS_GOOD) | set(FEELINGS_BAD)
# Stories asked about are 1 to LONGEST sentences of a tale (its opening, then a first scene),
# most of them short (story_length). A small model learns to find an answer in the text where it
# is a few tokens away, then further back (data/finetune.py's length warm-up draws the shortest
# conversations first): the README has the measured curves.
LONGEST = 8

GREETINGS = [
    ("Hello!", "Hello! I can tell you a story, or answer questions about one you give me."),
    ("Hi there.", "Hi! Would you like a story? Or give me one and ask me about it."),
    ("Good morning!", "Good morning! I know many stories. Shall I tell you one?"),
    ("Who are you?", "I am a small language model. I know stories, and I can answer questions "
                     "about a story you give me."),
    ("What can you do?", "I can tell you a short story, or read a story you give me and "
                         "answer questions about it."),
    ("Thank you!", "You are welcome!"),
    ("Thanks a lot.", "You are welcome. Ask me anything about a story."),
    ("Goodbye!", "Goodbye! Come back for another story."),
    ("How are you?", "I am fine, thank you. Would you like to hear a story?"),
]
REQUESTS = [
    "Tell me a story about {a_kind} and {a_thing}.",
    "Write a short story about {a_kind} with {a_thing}.",
    "Can you tell me a story about {a_kind} and {a_thing}?",
    "Please tell me a story with {a_kind} and {a_thing} in it.",
]
# The question after the story, or before it: read first, a small model already knows what to
# look for as it reads the story.
ASK_ABOUT = [
    "{story}\n\n{question}",
    "Read this story:\n\n{story}\n\n{question}",
    "{question}\n\n{story}",
    "Question: {question}\n\nStory: {story}",
]


def story_length(rng: random.Random) -> int:
    """How many sentences of a tale to ask about: 1 (half the time), 2 (a quarter), ... up to
    LONGEST."""
    length = 1
    while length < LONGEST and rng.random() < 0.5:
        length += 1
    return length


def first_sentences(story: str, count: int) -> str:
    """The story up to the end of its `count`-th sentence (paragraph breaks kept)."""
    ends = [m.end() for m in re.finditer(r'[.!?]"?(?=\s|$)', story)]
    return story if count >= len(ends) else story[:ends[count - 1]]


def questions(story: str, facts: dict[str, str]) -> list[tuple[str, str, str]]:
    """(question, answer, the fact the answer must hold) for each fact the story states.

    Where the story says the fact in a phrase ("She lived in a hut"), the answer uses that
    phrase ("Kitty lived in a hut"): a small model answers by finding the phrase in the story and
    copying what follows it, which it learned in pretraining."""
    hero, text = facts["hero"], story.lower()
    found: list[tuple[str, str, str]] = [
        ("Who is this story about?", f"This story is about {hero}.", hero),
        (f"What is {hero}?", f"{hero} is {article(facts['kind'])}.", facts["kind"]),
    ]
    if f"lived in {facts['home']}".lower() in text:
        found.append((f"Where does {hero} live?", f"{hero} lived in {facts['home']}.",
                      facts["home"]))
    likes = re.search(rf"(loved|liked) to {re.escape(facts['activity'])}\b", story)
    if likes:
        found.append((f"What does {hero} like to do?",
                      f"{hero} {likes.group(1)} to {facts['activity']}.", facts["activity"]))
    if facts["friend"].lower() in text:
        found.append(("Who else is in the story?", f"{facts['friend']} is in the story too.",
                      facts["friend"]))
    if facts["thing"].lower() in text:
        found.append(("What thing does the story mention?",
                      f"The story mentions {article(facts['thing'])}.", facts["thing"]))
    if facts["place"].lower() in text:
        found.append(("Which place does the story name?",
                      f"The story names {facts['place']}.", facts["place"]))
    felt = [word for word in re.findall(rf"{re.escape(hero)} (?:felt|was feeling) (?:very |so )?"
                                        r"(\w+)", story) if word in FEELINGS]
    if felt:
        found.append((f"How did {hero} feel?", f"{hero} felt {felt[-1]}.", felt[-1]))
    fear = re.search(rf"{re.escape(hero)} (was afraid|was scared) of ([a-z ]+)", story)
    if fear:
        found.append((f"What was {hero} afraid of?", f"{hero} {fear.group(1)} of "
                      f"{fear.group(2)}.", fear.group(2)))
    if re.search(r"(was gone|was missing|was not there)", story) and \
            facts["thing"].lower() in text:
        found.append((f"What did {hero} lose?", f"{hero} lost {facts['his']} {facts['thing']}.",
                      facts["thing"]))
    pet = re.search(r"had a ([a-z ]+?) (named|called) ([A-Z]\w+)", story)
    if pet:
        found.append((f"What is the name of {hero}'s {pet.group(1)}?",
                      f"{hero} had a {pet.group(1)} {pet.group(2)} {pet.group(3)}.",
                      pet.group(3)))
    return found


def conversation(kind: str, writer: StoryWriter, rng: random.Random) -> Conversation:
    """One conversation of a kind of MIX, from the story writer's and rng's next draws."""
    if kind == "small_talk":
        user, answer = rng.choice(GREETINGS)
        return Conversation([{"role": "user", "content": user},
                             {"role": "assistant", "content": answer}])
    if kind == "request":
        creature, thing = rng.choice(ANIMALS), rng.choice(THINGS)
        story, _ = writer.tale(kind=creature, thing=thing, scene=False)
        ask = rng.choice(REQUESTS).format(a_kind=article(creature), a_thing=article(thing))
        return Conversation([{"role": "user", "content": ask},
                             {"role": "assistant", "content": story}],
                            checks=[creature, thing])
    story, facts = writer.tale()
    story = first_sentences(story, story_length(rng))
    asked = rng.sample(questions(story, facts), 2)
    (question, answer, fact), (question2, answer2, fact2) = asked
    messages = [{"role": "user", "content": rng.choice(ASK_ABOUT).format(story=story,
                                                                         question=question)},
                {"role": "assistant", "content": answer}]
    if kind == "question":
        return Conversation(messages, answer=fact)
    messages += [{"role": "user", "content": question2},
                 {"role": "assistant", "content": answer2}]
    return Conversation(messages, answer=fact2)


def builtin_conversations(count: int, seed: int, held_out: bool = False
                          ) -> Iterator[Conversation]:
    """`count` conversations. The held-out ones (held_out=True) come from other story seeds:
    training never sees their stories."""
    part = "held-out" if held_out else "train"
    rng = random.Random(f"{seed}-instructions-{part}")
    writer = StoryWriter(rng.getrandbits(63) + (1 << 63 if held_out else 0))
    kinds, weights = zip(*MIX, strict=True)
    for _ in range(count):
        yield conversation(rng.choices(kinds, weights)[0], writer, rng)


def main(argv: list[str] | None = None) -> None:
    from config import add_config_arguments, config_from_args

    parser = argparse.ArgumentParser(
        prog="python -m corpus.instructions",
        description="Print or write the built-in instruction set (used when data/finetune is "
                    "empty), one JSON conversation per line.")
    parser.add_argument("--out", help="write the conversations to this .jsonl file")
    parser.add_argument("--head", type=int, default=0, metavar="N", help="print N of them")
    parser.add_argument("--count", type=int, help="how many (default: "
                        "finetune.builtin_conversations)")
    parser.add_argument("--held-out", action="store_true",
                        help="the held-out ones (validation), from other stories")
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    cfg = config_from_args(args)
    count = args.head or args.count or cfg.finetune.builtin_conversations
    lines = (json.dumps({"messages": c.messages}, ensure_ascii=False) + "\n"
             for c in builtin_conversations(count, cfg.finetune.seed, args.held_out))
    if not args.out:
        sys.stdout.writelines(lines)
        return
    from pathlib import Path

    from errors import DataError

    out = Path(args.out)
    if out.exists():
        raise DataError(f"{out} already exists", "write to a new file (nothing was changed)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    with open(tmp, "w", encoding="utf-8") as f:
        f.writelines(lines)
    tmp.replace(out)
    print(f"Wrote {count} conversations to {out}")


if __name__ == "__main__":
    from errors import run_cli

    run_cli(main)
