"""The built-in corpus: simple English stories generated from a seed.

When data/raw is empty, `make tokenizer` and `make data` stream this corpus (5 MB by default,
`data.sample_size_mb` in llm.config.js), so a fresh project trains with no download at all.
Nothing is written to data/raw: the same seed always gives the same stories.

Each story is one document with a small plot arc (a setup, a problem, a resolution), a few
characters, places and objects, and lines of dialogue. The grammar is combinatorial — a few
hundred templates over a few thousand words — so the text is varied enough that a small model
has to learn English structure rather than memorise a handful of sentences.

To look at the corpus, or to write it to a file:

    python -m corpus.sample --head 3                          # print three stories
    python -m corpus.sample --out data/raw/stories.txt        # write ~5 MB to a file
    python -m corpus.sample --out stories.txt --size-mb 20 --seed 7

In a written file the stories are separated by lines holding `<|endoftext|>` (the format of
TinyStories), which data/prepare.py reads back as document boundaries.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
from collections.abc import Iterator
from pathlib import Path

# ---- vocabulary: edit these lists to change what the stories are about ----


def _words(text: str) -> list[str]:
    return text.split()


def _phrases(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


GIRL_NAMES = _words("""
    Mia Lily Emma Ava Sophie Zoe Lucy Chloe Ella Grace Ruby Hannah Nora Clara Alice Rosa Maya
    Isla Leah Anna Elsie Ivy Freya Hazel Willow Luna Stella Daisy Poppy Matilda Evie Iris Jasmine
    Amara Priya Aisha Fatima Mei Yuki Sakura Ana Sofia Lucia Elena Camila Valentina Ines Marta
    Greta Heidi Ingrid Astrid Olga Nadia Tanya Zara Layla Noor Esther Miriam Ruth Naomi Tess
    Molly Holly Polly Penny Wendy Betty Kitty Maggie Josie Rosie Annie Bella Nina Tilly Millie
    Edith Mabel Violet Pearl Opal Flora Fern Juniper Maple Olive Harriet Beatrix Agnes Martha
    Lena Kira Tara Anya Dina Keiko Hana Mina Suki Amina Kemi Ada Nia Imani Zuri Ayla Selin Defne
    Ines Carmen Paloma Frida Lotte Saskia Maren Elin Sigrid Bianca Chiara Giulia Francesca
    Aurora Beatrice Cora Delphine Eloise Fiona Gemma Ilse Johanna Katya Lorna Marisol Nell
    Orla Petra Quinn Rhea Simone Thea Una Vera Winnie Xenia Yara Zelda Adele Brigid Celeste
    Dorothy Esme Flavia Gwen Hilda Imogen Jemima Kerstin Lucille Marguerite Nadine Ottilie
""")
BOY_NAMES = _words("""
    Leo Max Sam Ben Tom Jack Oliver Noah Liam Finn Oscar Theo Hugo Felix Arthur Henry Charlie
    George Harry Alfie Louis Jacob Ethan Lucas Mason Logan Owen Caleb Eli Jonah Miles Milo Otis
    Rafi Omar Yusuf Ali Amir Ravi Arjun Kenji Hiro Takumi Chen Wei Jun Diego Mateo Pablo Carlos
    Luis Marco Luca Enzo Paolo Tomas Anton Pavel Ivan Nikolai Erik Lars Sven Olaf Bjorn Kofi
    Kwame Jabari Tariq Malik Samir Idris Ezra Levi Reuben Silas Jasper Rupert Basil Percy Ned
    Teddy Freddie Archie Stanley Walter Albert Edgar Frank Harold Hector Victor Rufus Cyrus
    Dmitri Mikhail Jonas Nils Pedro Bruno Rocco Gino Ahmed Hassan Zayd Emre Kemal Baris Tobias
    Quentin Ignatius Barnaby Wilbur Cedric Desmond Gordon Murray Angus Duncan Fergus Rory
    Ambrose Benedict Clement Dorian Emil Florian Gideon Horace Ismael Jules Kasimir Leopold
    Magnus Nathaniel Orson Phineas Raphael Sebastian Thaddeus Ulrich Vincent Wendell Xavier
    Yannick Zachary Alonso Bartholomew Cosmo Dashiell Elias Ferdinand Gustav Humphrey Isidore
""")
# (kind, gender): who a character is. Animals and creatures get a name and a pronoun too.
PEOPLE = [
    ("girl", "f"), ("boy", "m"), ("woman", "f"), ("man", "m"), ("grandmother", "f"),
    ("grandfather", "m"), ("princess", "f"), ("prince", "m"), ("queen", "f"), ("king", "m"),
    ("farmer", "?"), ("baker", "?"), ("sailor", "?"), ("fisherman", "m"), ("teacher", "?"),
    ("painter", "?"), ("gardener", "?"), ("doctor", "?"), ("pilot", "?"), ("knight", "?"),
    ("wizard", "m"), ("witch", "f"), ("shepherd", "?"), ("carpenter", "?"), ("librarian", "?"),
    ("musician", "?"), ("inventor", "?"), ("explorer", "?"), ("potter", "?"), ("tailor", "?"),
    ("blacksmith", "?"), ("beekeeper", "?"), ("mail carrier", "?"), ("clockmaker", "?"),
    ("lighthouse keeper", "?"), ("astronaut", "?"), ("cook", "?"), ("firefighter", "?"),
]
ANIMALS = _words("""
    fox rabbit bear owl mouse cat dog duck frog turtle squirrel deer hedgehog otter penguin
    elephant lion tiger monkey goat horse pig cow lamb bee butterfly snail crab whale dolphin
    kitten puppy bunny chick goose swan robin sparrow crow parrot raccoon badger beaver mole
    hamster pony donkey giraffe zebra hippo koala kangaroo panda seal walrus octopus ladybug
    ant spider lizard dragon unicorn robot dinosaur bat wolf moose camel llama alpaca chipmunk
    ferret lobster starfish seahorse firefly caterpillar grasshopper woodpecker flamingo
""")
TRAITS = _words("""
    little small tiny young old kind brave shy curious clever gentle cheerful grumpy quiet
    friendly playful careful clumsy lazy busy helpful funny silly wise proud honest patient
    sleepy hungry happy lonely bold bright cheeky chatty daring eager fearless fussy generous
    giggly hopeful humble jolly joyful lively loyal lucky merry messy modest nervous nosy polite
    restless sensible serious sweet thoughtful timid tidy stubborn dreamy adventurous
""")
COLORS = _words("""
    red blue green yellow orange purple pink white black brown gray golden silver
    turquoise crimson violet amber scarlet lavender teal maroon beige ivory copper
""")
LOOKS = _words("""
    shiny old new tiny big little soft round smooth bumpy fuzzy sparkly striped spotted
    wooden glass paper woolen velvet rusty dusty shabby fancy plain heavy light bright
    squeaky crooked wobbly polished painted broken patched lumpy silky tall short
""")
# Things a character can own, lose, share or make.
THINGS = _words("""
    kite ball book hat key map lantern shell drum boat blanket ring bell box coin feather
    scarf umbrella basket bucket kettle teapot cup spoon whistle flute violin guitar trumpet
    compass telescope clock watch bicycle wagon sled balloon candle marble puzzle crayon
    paintbrush pencil notebook diary letter postcard photograph button ribbon necklace
    bracelet crown wand sword shield helmet backpack suitcase pillow quilt sock mitten boot
    sandal jacket sweater apron ladder hammer shovel rake wheelbarrow net fishing-rod rope
    tent hammock jar bottle vase mirror comb brush sponge broom bowl plate pan pot toy
    doll teddy robot top yo-yo harmonica banjo tambourine xylophone piano cello accordion
    globe magnet rock pebble acorn pinecone seed egg stamp sticker medal trophy badge
    lunchbox paintbox flashlight snow-globe kaleidoscope hourglass birdcage pinwheel
    skateboard scooter canoe paddle anchor oar lasso saddle bridle horseshoe bucket spade
    trowel watering-can rolling-pin whisk ladle sieve teacup saucer thimble needle spool
    marionette rattle kazoo ocarina bagpipe gong bongo lute mandolin recorder tuba clarinet
""")
THINGS = [t.replace("-", " ") for t in THINGS]  # "watering-can" -> "watering can"
FOODS = _phrases("""
    apples, pears, plums, cherries, strawberries, blueberries, raspberries, grapes, oranges,
    bananas, peaches, carrots, peas, corn, pumpkin soup, tomato soup, warm bread, honey cake,
    cheese sandwiches, cookies, pancakes, muffins, blueberry pie, apple pie, rice pudding,
    porridge, noodles, dumplings, berries, nuts, seeds, jam tarts, lemonade, hot chocolate,
    milk, biscuits, toast with butter, scrambled eggs, potato pie, carrot cake, gingerbread,
    cinnamon buns, fish pie, vegetable stew, mushroom soup, chestnuts, figs, dates, melon slices,
    popcorn, ice cream, fruit salad, cornbread, oat cakes, sweet potatoes, plum jam, pretzels
""")
HOMES = _phrases("""
    a small cottage at the edge of the woods, a tall house on a windy hill,
    a cozy burrow under an old oak tree, a little blue house by the sea,
    a busy apartment above a bakery, a farmhouse with a red barn, a houseboat on a slow river,
    a treehouse high in the branches, a castle with seven towers, a lighthouse on a rocky island,
    a cabin in the snowy mountains, a hut beside a sparkling lake, a nest in a hollow log,
    a cottage with a thatched roof, a narrow house on a crooked street, a den among the roots,
    a windmill at the top of a meadow, a caravan painted with stars, a cave behind a waterfall,
    a village where the streets were made of cobblestones, a town full of bridges and canals,
    a stone house next to the market, a quiet street lined with cherry trees,
    a garden shed that had been turned into a tiny home, an old mill by the stream
""")
PLACES = _phrases("""
    the forest, the meadow, the beach, the river, the lake, the pond, the park, the garden,
    the market, the library, the school, the bakery, the harbor, the hill, the valley, the cave,
    the orchard, the farm, the barn, the field, the playground, the museum, the zoo, the castle,
    the bridge, the island, the mountain, the waterfall, the old mill, the train station,
    the lighthouse, the village square, the flower shop, the toy shop, the swamp, the desert,
    the jungle, the snowy woods, the riverbank, the sand dunes, the rocky shore, the attic,
    the cellar, the kitchen, the greenhouse, the clock tower, the fairground, the bus stop,
    the post office, the town hall, the candy shop, the bookshop, the pier, the tide pools,
    the cornfield, the vegetable patch, the bamboo grove, the pine woods, the old well,
    the top of the hill, the edge of the cliff, the far side of the lake, the end of the lane,
    the ice rink, the swimming pool, the skate park, the botanical garden, the observatory,
    the aquarium, the circus tent, the carousel, the boathouse, the quarry, the marshes,
    the heather moor, the olive grove, the vineyard, the lavender fields, the salt flats,
    the canyon, the glacier, the volcano, the coral reef, the mangroves, the tea house,
    the bakery on the corner, the village green, the duck pond, the windmill
""")
# Hiding places for lost things: "under the bed", "behind the door".
SPOTS = _phrases("""
    under the bed, behind the door, inside a boot, under a pile of leaves, in the laundry basket,
    on top of the wardrobe, beneath the stairs, in the flower pot, behind the sofa,
    under the kitchen table, in the pocket of an old coat, next to the bread bin,
    in the dog's basket, inside the piano, on the windowsill, between two books,
    under a cushion, in the wheelbarrow, at the bottom of the toy box, in the bird bath,
    behind the curtains, on the roof of the shed, in the hollow of a tree, under a bush
""")
OPENINGS = _phrases("""
    Once upon a time, Long ago, One day, Not long ago, In a land far away,
    A long time ago, Many years ago, Once, Some time ago, In a faraway kingdom
""")
WEATHERS = _words("sunny rainy windy foggy snowy cloudy warm chilly bright quiet stormy frosty")
TIMES = _words("morning afternoon evening day night")
SEASONS = _words("spring summer autumn winter")
FEELINGS_GOOD = _words("""
    happy glad proud excited thankful relieved delighted cheerful calm joyful pleased grateful
""")
FEELINGS_BAD = _words("""
    sad worried upset scared lonely nervous cross grumpy frightened gloomy anxious disappointed
""")
ADVERBS = _words("""
    softly quietly slowly quickly happily sadly gently loudly kindly bravely carefully
    eagerly shyly proudly calmly nervously patiently cheerfully sleepily firmly
""")
TREES = _words("""
    oak birch willow maple pine cedar elm ash beech chestnut cherry apple palm fir spruce poplar
    hazel holly juniper magnolia olive sycamore yew lemon fig walnut linden hawthorn rowan larch
""")
FLOWERS = _words("""
    roses tulips daisies sunflowers poppies lilies violets bluebells daffodils marigolds
    camellias dandelions buttercups orchids peonies snowdrops primroses foxgloves bellflowers
    irises lilacs pansies cornflowers forget-me-nots sweet-peas carnations hyacinths
""")
FLOWERS = [f.replace("-", " ") for f in FLOWERS]
BIRDS = _words("""
    robins sparrows blackbirds finches swallows larks thrushes wrens magpies doves pigeons
    seagulls owls geese ducks starlings herons cranes woodpeckers jays
""")
SMELLS = _phrases("""
    fresh bread, wet grass, pine needles, salty sea air, wood smoke, warm cinnamon,
    ripe strawberries, rain on hot stones, roses and mint, melting snow, baked apples,
    cut hay, seaweed, old books, lemon and honey, chocolate, roasting chestnuts, wild garlic
""")
SOUNDS = _phrases("""
    a dog barked, church bells rang, the waves crashed on the rocks, a train whistled,
    the wind whistled through the chimney, frogs croaked in the reeds, an owl hooted,
    children laughed in the street, a cart rattled over the cobblestones, bees hummed,
    leaves rustled, a door creaked, rain pattered on the windows, thunder grumbled,
    a rooster crowed, somebody played the piano, the river gurgled, crickets chirped
""")
DAYS = _words("Monday Tuesday Wednesday Thursday Friday Saturday Sunday")
MONTHS = _words("""
    January February March April May June July August September October November December
""")
CLOTHES = _phrases("""
    coat, cloak, dress, pair of overalls, pair of boots, cap, beret, bonnet, waistcoat, shawl,
    raincoat, pair of sneakers, pair of slippers, pair of gloves, pair of earmuffs, bow tie,
    sash, tunic, kilt, poncho, hoodie, cardigan, pinafore, bandana, straw hat, woolly hat,
    sun hat, top hat, pair of rain boots, apron with big pockets
""")
HAIR = _phrases("""
    curly red hair, long black braids, short brown hair, messy blond hair, a bushy tail,
    silver whiskers, spotted fur, soft gray feathers, a tuft of white hair, freckles,
    big round glasses, a crooked smile, rosy cheeks, a gap between the front teeth,
    shiny green scales, long floppy ears, a striped tail, bright blue eyes, dark brown eyes
""")
NUMBERS = _words("two three four five six seven eight nine ten eleven twelve twenty")
SKY = _phrases("""
    pale blue, pink and orange, heavy and gray, full of fluffy clouds, clear and full of stars,
    streaked with gold, dark purple, bright and cloudless, silver with moonlight, misty
""")
SCENERY = [
    "The {tree} trees swayed in the breeze, and {birds} sang overhead.",
    "The air smelled of {smell}.",
    "{a_creature} {scurried} across the path and disappeared.",
    "Puddles sparkled in the {weather} light.",
    "Long shadows stretched across the ground.",
    "{a_creature} {scurried} past, and {sound}.",
    "The clouds drifted slowly, like {color} sheep.",
    "Somewhere nearby, {sound}.",
    "The sky was {sky}.",
    "It was a {weather} {day} in {month}.",
    "The {flowers} by the path were just beginning to bloom.",
    "{Number} {birds} sat in a row on the fence.",
    "Far away, {sound}, and then everything was quiet again.",
    "Under the old {tree} tree, the grass was soft and cool.",
    "The path was lined with {flowers} and tall {tree} trees.",
    "A pair of {birds} flew past, and the air smelled of {smell}.",
    "It was {month}, and the {flowers} were everywhere.",
]

# Activities: base form, past tense, -ing form (the verbs below are conjugated by rule).
ACTIVITIES = _phrases("""
    fly a kite, play hide and seek, build sandcastles, climb trees, paint pictures,
    bake cookies, read stories, sing songs, collect shells, pick flowers, ride a bicycle,
    play the drum, dance in the rain, watch the stars, catch butterflies, plant seeds,
    feed the ducks, jump in puddles, make paper boats, draw maps, play football,
    skip stones on the water, knit scarves, splash in the river, roll down the hill,
    chase bubbles, count the clouds, whistle tunes, tell jokes, build a fort,
    swing on the swings, look for treasure, visit the market, fix old clocks,
    grow tomatoes, write poems, play the flute, make puppets, ice skate on the pond,
    go fishing, explore the woods, carve wooden animals, pick berries, gather acorns,
    play chess, do puzzles, practice magic tricks, race paper planes, sew quilts,
    build snowmen, press flowers, play marbles, watch the trains, sketch birds,
    polish stones, juggle oranges, make pancakes, play the harmonica, blow soap bubbles,
    tend the beehives, groom the horses, weave baskets, fold paper cranes, stack pebbles,
    search for fossils, listen to the rain, paint the fence, decorate cupcakes, sail toy boats
""")
IRREGULAR_PAST = {
    "fly": "flew", "build": "built", "ride": "rode", "sing": "sang", "read": "read",
    "make": "made", "draw": "drew", "tell": "told", "swing": "swung", "go": "went",
    "grow": "grew", "write": "wrote", "sew": "sewed", "catch": "caught", "find": "found",
    "run": "ran", "see": "saw", "take": "took", "give": "gave", "hold": "held", "bring": "brought",
    "think": "thought", "get": "got", "come": "came", "eat": "ate", "sit": "sat", "hide": "hid",
    "throw": "threw", "fall": "fell", "feel": "felt", "keep": "kept", "leave": "left",
    "lose": "lost", "win": "won", "do": "did", "swim": "swam", "know": "knew", "dig": "dug",
    "ice": "iced", "dance": "danced", "race": "raced", "practice": "practiced", "carve": "carved",
}
DOUBLE_FINAL = {"skip", "plan", "hop", "stop", "swim", "run", "dig", "win", "sit", "chat", "jog"}


def past(verb_phrase: str) -> str:
    """'fly a kite' -> 'flew a kite'."""
    verb, _, rest = verb_phrase.partition(" ")
    if verb in IRREGULAR_PAST:
        done = IRREGULAR_PAST[verb]
    elif verb in DOUBLE_FINAL:
        done = verb + verb[-1] + "ed"
    elif verb.endswith("e"):
        done = verb + "d"
    elif verb.endswith("y") and verb[-2] not in "aeiou":
        done = verb[:-1] + "ied"
    else:
        done = verb + "ed"
    return f"{done} {rest}".strip()


def gerund(verb_phrase: str) -> str:
    """'ride a bicycle' -> 'riding a bicycle'."""
    verb, _, rest = verb_phrase.partition(" ")
    if verb in DOUBLE_FINAL:
        doing = verb + verb[-1] + "ing"
    elif verb.endswith("ie"):
        doing = verb[:-2] + "ying"
    elif verb.endswith("e") and verb not in ("see", "be"):
        doing = verb[:-1] + "ing"
    else:
        doing = verb + "ing"
    return f"{doing} {rest}".strip()


def article(phrase: str) -> str:
    """'apple' -> 'an apple', 'kite' -> 'a kite', 'unicorn' -> 'a unicorn', 'honest' -> 'an ...'."""
    lower = phrase.lower()
    vowel_sound = lower[:1] in "aeiou" and not lower.startswith(("uni", "use", "eu", "one"))
    vowel_sound = vowel_sound or lower.startswith(("honest", "hour", "heir"))
    return ("an " if vowel_sound else "a ") + phrase


def dressed(color: str, clothes: str) -> str:
    """('red', 'pair of boots') -> 'a pair of red boots'; ('red', 'cap') -> 'a red cap'."""
    if clothes.startswith("pair of "):
        return f"a pair of {color} {clothes.removeprefix('pair of ')}"
    return article(f"{color} {clothes}")


def capitalize(text: str) -> str:
    return text[:1].upper() + text[1:]


# ---- characters ----


class Character:
    """A named character with pronouns, so templates can say {he}, {his}, {him}."""

    def __init__(self, rng: random.Random, taken: set[str]) -> None:
        if rng.random() < 0.55:
            kind, gender = rng.choice(PEOPLE)
        else:
            kind, gender = rng.choice(ANIMALS), "?"
        if gender == "?":
            gender = rng.choice("mf")
        names = GIRL_NAMES if gender == "f" else BOY_NAMES
        name = rng.choice(names)
        while name in taken:
            name = rng.choice(names)
        taken.add(name)
        self.name, self.kind, self.trait = name, kind, rng.choice(TRAITS)
        female = gender == "f"
        self.he, self.him, self.his = ("she", "her", "her") if female else ("he", "him", "his")
        self.called = rng.choice(("named", "called", "named", "whose name was"))
        self.intro = f"{article(self.trait)} {kind} {self.called} {name}"


# ---- templates ----
# A template is a string with {slots}. Story-wide slots (names, the lost thing, the place) are
# fixed per story; "fresh" slots such as {said} or {adv} are drawn again every time they appear.
# Pronoun slots: {he} {He} {him} {his} {His} for the hero, {fhe} {fHe} {fhim} {fhis} for the friend.

FRESH = {
    "said": _words("said said said said whispered added replied explained"),
    "replied": _words("replied answered said said"),
    "asked": _words("asked asked wondered asked"),
    "shouted": _words("shouted cried called exclaimed"),
    "adv": ADVERBS,
    "good": FEELINGS_GOOD,
    "bad": FEELINGS_BAD,
    "food": FOODS,
    "color": COLORS,
    "weather": WEATHERS,
    "spot": SPOTS,
    "somewhere": PLACES,
    "tree": TREES,
    "flowers": FLOWERS,
    "birds": BIRDS,
    "smell": SMELLS,
    "sound": SOUNDS,
    "sky": SKY,
    "day": DAYS,
    "month": MONTHS,
    "Number": [n.capitalize() for n in NUMBERS],
    "a_creature": lambda rng: article(f"{rng.choice(TRAITS)} {rng.choice(ANIMALS)}"),
    "scurried": _words("""
        scurried hopped waddled trotted darted crept wandered strolled tiptoed galloped
        fluttered slithered scampered shuffled bounded zigzagged
    """),
    "number": NUMBERS,
}


class Slots(dict):
    """A dict for str.format_map that draws a fresh random value for the FRESH keys (from a
    list, or by calling a function with the random generator)."""

    def __init__(self, rng: random.Random, values: dict[str, str]) -> None:
        super().__init__(values)
        self.rng = rng

    def __missing__(self, key: str) -> str:
        if key not in FRESH:
            raise KeyError(key)
        options = FRESH[key]
        return options(self.rng) if callable(options) else self.rng.choice(options)


class StoryWriter:
    """Writes one story at a time: opening, one plot arc, ending."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    # -- helpers --

    def pick(self, options: list[str] | tuple[str, ...]) -> str:
        return self.rng.choice(options)

    def fill(self, template: str) -> str:
        return capitalize(template.format_map(self.slots))

    def one(self, *templates: str) -> str:
        """One sentence from a few alternative templates."""
        return self.fill(self.pick(templates))

    def say(self, who: str, line: str, verb: str = "said") -> str:
        """A line of dialogue in one of three shapes, punctuated correctly."""
        who, line = who.format_map(self.slots), self.fill(line)
        # A question is asked and an exclamation shouted, whatever the template suggested.
        if line.endswith("?") and verb != "whispered":
            verb = "asked"
        elif line.endswith("!") and verb in ("said", "replied"):
            verb = "shouted"
        verb = self.slots[verb] if verb in FRESH else verb
        shape = self.rng.random()
        if shape < 0.45:  # "Line," said Mia.
            spoken = line[:-1] + "," if line.endswith(".") else line
            return f'"{spoken}" {verb} {who}.'
        if shape < 0.75:  # Mia said, "Line."
            return f'{capitalize(who)} {verb}, "{line}"'
        adverb = self.pick(ADVERBS)  # "Line," Mia said softly.
        spoken = line[:-1] + "," if line.endswith(".") else line
        return f'"{spoken}" {who} {verb} {adverb}.'

    def paragraph(self, *sentences: str) -> str:
        sentences = [s for s in sentences if s]
        if self.rng.random() < 0.3:  # a sentence of scenery makes the stories less repetitive
            sentences.insert(self.rng.randrange(1, len(sentences) + 1), self.one(*SCENERY))
        return " ".join(sentences)

    # -- the story --

    def story(self) -> str:
        hero = self.cast()
        arc = self.rng.choice(ARCS)
        paragraphs = [self.opening(hero)] + arc(self) + [self.ending(MORALS[arc.__name__])]
        return "\n\n".join(paragraphs)

    def tale(self, kind: str | None = None, thing: str | None = None,
             scene: bool = True) -> tuple[str, dict]:
        """A short story (its opening, and with `scene` the first scene of a plot) and the
        facts it states: what corpus/instructions.py asks questions about. `kind` (one of
        ANIMALS) and `thing` (one of THINGS) ask for a hero of that kind who has that thing."""
        hero = self.cast(kind, thing)
        arc = self.rng.choice(ARCS)
        paragraphs = [self.opening(hero, carries=thing is not None)]
        if scene:
            paragraphs.append(arc(self)[0])
        text = "\n\n".join(paragraphs)
        facts = {name: self.slots[name] for name in ("hero", "his", "kind", "home", "activity",
                                                     "friend", "thing", "place")}
        return text, facts

    def cast(self, kind: str | None = None, thing: str | None = None) -> Character:
        """Choose the story's hero, friend, thing and places (the slots); return the hero."""
        rng = self.rng
        taken: set[str] = set()
        hero, friend = Character(rng, taken), Character(rng, taken)
        if kind is not None:
            hero.kind = kind
            hero.intro = f"{article(hero.trait)} {kind} {hero.called} {hero.name}"
        if rng.random() < 0.4:  # "a shiny red kite" or just "a shiny kite"
            thing_ = f"{rng.choice(LOOKS)} {rng.choice(COLORS)} {rng.choice(THINGS)}"
        else:
            thing_ = f"{rng.choice(LOOKS + COLORS)} {rng.choice(THINGS)}"
        thing = f"{rng.choice(COLORS)} {thing}" if thing is not None else thing_
        activity = rng.choice(ACTIVITIES)
        self.slots = Slots(rng, {
            "hero": hero.name, "he": hero.he, "He": capitalize(hero.he), "him": hero.him,
            "his": hero.his, "His": capitalize(hero.his), "kind": hero.kind,
            "trait": hero.trait,
            "friend": friend.name, "fhe": friend.he, "fHe": capitalize(friend.he),
            "fhim": friend.him, "fhis": friend.his, "fHis": capitalize(friend.his),
            "fkind": friend.kind, "friend_intro": friend.intro,
            "thing": thing, "a_thing": article(thing),
            "place": rng.choice(PLACES), "place2": rng.choice(PLACES),
            "home": rng.choice(HOMES),
            "activity": activity, "activity_past": past(activity),
            "activity_ing": gerund(activity),
            "when": (when := f"one {rng.choice(WEATHERS)} {rng.choice(TIMES)}"),
            "When": capitalize(when),
            "season": rng.choice(SEASONS),
            "hair": rng.choice(HAIR),
            "a_clothes": dressed(rng.choice(COLORS), rng.choice(CLOTHES)),
        })
        return hero

    def opening(self, hero: Character, carries: bool = False) -> str:
        first = self.pick((
            f"{self.pick(OPENINGS)}, there was {hero.intro}. {{He}} lived in {{home}}.",
            f"{self.pick(OPENINGS)}, {hero.intro} lived in {{home}}.",
            f"There once was {hero.intro} who lived in {{home}}.",
            f"In {{home}} lived {hero.intro}.",
            f"{capitalize(self.slots['when'])}, {hero.intro} woke up early in {{home}}.",
        ))
        return self.paragraph(
            self.fill(first),
            self.one(
                "{He} loved to {activity} more than anything.",
                "Every day, {he} liked to {activity}.",
                "{His} favorite thing to do was {activity_ing}.",
                "More than anything, {hero} loved {activity_ing}.",
                "{hero} was {trait}, and {he} spent most days {activity_ing}.",
            ),
            self.one(
                "{He} had {hair} and always wore {a_clothes}.",
                "{He} had {hair}.",
                "{He} wore {a_clothes} wherever {he} went.",
                "",
                "",
            ),
            self.one(
                "{His} best friend was {friend_intro}.",
                "{He} had a friend, {friend_intro}, who lived nearby.",
                "Not far away lived {friend_intro}.",
                "",
                "{He} always carried {a_thing} with {him}.",
            ) if not carries else self.one("{He} always carried {a_thing} with {him}."),
        )

    def ending(self, morals: list[str]) -> str:
        moral = self.pick(morals)
        return " ".join(s for s in (
            self.one(
                "From that day on, {hero} and {friend} were the best of friends.",
                "That night, {hero} fell asleep with a smile on {his} face.",
                "When the sun went down, {hero} walked home feeling {good}.",
                "After that, {hero} never forgot what had happened at {place}.",
                "And every {season} after that, {hero} and {friend} would {activity} together.",
                "Later, they shared {food} and laughed about the whole adventure.",
                "It had been a long day, but {hero} felt {good} and warm inside.",
            ),
            self.pick((
                f"{capitalize(self.slots['he'])} had learned that {moral}.",
                f"It was a good lesson: {moral}.",
                f"{self.slots['hero']} knew now that {moral}.",
                "",
            )),
        ) if s)




# ---- plot arcs: each returns the middle paragraphs of a story ----


def arc_lost_thing(w: StoryWriter) -> list[str]:
    return [
        w.paragraph(
            w.one("{When}, {hero} went to {place} to {activity}.",
                  "One {weather} {season} day, {hero} took {his} {thing} to {place}.",
                  "{When}, {hero} could not find {his} {thing} anywhere."),
            w.one("When {he} got home, {his} {thing} was gone!",
                  "But when {he} reached into {his} pocket, the {thing} was not there.",
                  "{He} looked on the shelf, but the {thing} was missing."),
            w.say("{hero}", w.pick(("Oh no! Where is my {thing}?", "My {thing} is gone!",
                                     "Has anyone seen my {thing}?")), "shouted"),
        ),
        w.paragraph(
            w.one("{He} looked {spot}.", "First, {he} searched {spot}."),
            w.one("{He} looked {spot}, too.", "Then {he} checked {spot}.",
                  "{He} even looked {spot}."),
            w.one("But the {thing} was nowhere to be found.", "It was not there.",
                  "There was nothing but dust."),
            w.one("{hero} felt {bad}.", "{hero} sat down and felt very {bad}.",
                  "A tear rolled down {his} cheek."),
        ),
        w.paragraph(
            w.one("Just then, {friend} came by.", "Soon {friend} knocked on the door.",
                  "{friend} saw {hero} and came over."),
            w.say("{friend}", w.pick(("Why do you look so {bad}?", "What is wrong?",
                                       "Is something the matter?")), "asked"),
            w.say("{hero}", "I lost my {thing}, and I have looked everywhere."),
            w.say("{friend}", w.pick(("Let us look together. Two pairs of eyes are better "
                                       "than one.", "Don't worry. I will help you find it.",
                                       "Think hard. Where did you have it last?"))),
        ),
        w.paragraph(
            w.one("Together they went back to {place}.", "They walked all the way to {place}.",
                  "They retraced every step {hero} had taken that day."),
            w.one("There, {spot}, something {color} was shining.",
                  "{friend} spotted it first, {spot}.",
                  "At last, {hero} saw it, {spot}."),
            w.say("{hero}", w.pick(("My {thing}! You found it!", "There it is!",
                                     "Thank you so much, {friend}!")), "shouted"),
            w.one("{He} hugged {friend} tightly.", "{He} held the {thing} close.",
                  "{hero} promised to take better care of it."),
        ),
    ]


def arc_fear(w: StoryWriter) -> list[str]:
    fear = w.pick(("the dark", "deep water", "high places", "thunder", "big dogs", "the sea",
                   "the old bridge", "being alone", "the tall ladder", "loud noises"))
    return [
        w.paragraph(
            w.one(f"But {{hero}} had a secret. {{He}} was afraid of {fear}.",
                  f"There was just one problem: {{hero}} was scared of {fear}."),
            w.one("Whenever {friend} asked {him} to come to {place}, {he} stayed at home.",
                  "So {he} never went to {place}, even though {he} wanted to."),
        ),
        w.paragraph(
            w.one("{When}, {friend} came running.", "One {season} morning, {friend} arrived "
                  "with a big smile."),
            w.say("{friend}", w.pick((
                "There is a festival at {place} tonight. Please come with me!",
                "Everyone is going to {place} to {activity}. Will you come?",
                "I found something amazing at {place}. You have to see it!"))),
            w.say("{hero}", f"I can't. I am afraid of {fear}.", w.pick(("whispered", "said"))),
            w.say("{friend}", w.pick((
                "I will stay right next to you the whole time.",
                "Being scared is fine. We can go slowly.",
                "Hold my hand, and we will be brave together."))),
        ),
        w.paragraph(
            w.one("{hero} took a deep breath.", "{hero} thought about it for a long time."),
            w.one("Step by step, {he} walked with {friend} to {place}.",
                  "{His} knees were shaking, but {he} went anyway."),
            w.one(f"When they reached {fear}, it was not as bad as {{he}} had imagined.",
                  "It was scary at first, but then {he} began to smile.",
                  "{He} felt {bad} for a moment, and then {he} felt {good}."),
            w.say("{hero}", w.pick(("I did it! I really did it!", "That was not so scary after "
                                     "all.", "Thank you for helping me be brave.")), "shouted"),
        ),
    ]


def arc_help_friend(w: StoryWriter) -> list[str]:
    trouble, fix = w.pick((
        ("stuck at the top of a tall tree", "climbed up slowly and helped {fhim} down"),
        ("lost in the fog near {place2}", "called {fhis} name until {fhe} followed the sound"),
        ("caught in a thorny bush", "gently pulled the branches apart"),
        ("too hungry to walk home", "shared {food} from {his} basket"),
        ("stuck in the mud by the river", "found a long branch and pulled {fhim} out"),
        ("trapped on a rock in the middle of the stream", "built a bridge of flat stones"),
        ("feeling sick and cold", "wrapped {fhim} in a warm blanket and made hot tea"),
    ))
    return [
        w.paragraph(
            w.one("{When}, {hero} was {activity_ing} at {place} when {he} heard a cry.",
                  "{When}, {hero} heard someone calling for help."),
            w.say("a voice", "Help! Help me, please!", "shouted"),
        ),
        w.paragraph(
            w.one(f"It was {{friend}}. {{fHe}} was {trouble}.",
                  f"{{hero}} ran toward the sound and found {{friend}}, {trouble}."),
            w.say("{friend}", "I can't get out by myself. I am so scared!"),
            w.say("{hero}", w.pick(("Don't be afraid. I will help you.", "Hold on, I am coming!",
                                     "Stay calm. I have an idea."))),
        ),
        w.paragraph(
            w.one(f"{{hero}} thought carefully. Then {{he}} {fix}.",
                  f"It was not easy, but {{hero}} {fix}."),
            w.one("At last, {friend} was safe.", "Soon {friend} was safe and sound."),
            w.say("{friend}", w.pick(("Thank you! You are a true friend.",
                                       "I don't know what I would have done without you.",
                                       "How can I ever thank you?"))),
            w.say("{hero}", w.pick(("That is what friends are for.", "You would do the same "
                                     "for me.", "Just promise to be careful next time."))),
        ),
    ]


def arc_sharing(w: StoryWriter) -> list[str]:
    return [
        w.paragraph(
            w.one("{When}, {hero} and {friend} both wanted to play with the {thing}.",
                  "{When}, {friend} found {a_thing} at {place}, and {hero} wanted it too."),
            w.say("{hero}", "It is mine! I saw it first!", "shouted"),
            w.say("{friend}", "No, it is mine!", "shouted"),
            w.one("They pulled and pulled, and both of them felt {bad}.",
                  "They argued until both of them were red in the face."),
        ),
        w.paragraph(
            w.one("Then something happened.", "Suddenly, they heard a loud noise."),
            w.one("The {thing} slipped and fell into a puddle.",
                  "A gust of wind blew the {thing} across {place}.",
                  "The {thing} rolled away and stopped by {place2}."),
            w.one("They looked at each other.", "Both of them stopped arguing."),
            w.say("{hero}", w.pick(("I am sorry, {friend}. I was being selfish.",
                                     "Maybe we can share it.",
                                     "Fighting over it was silly, wasn't it?"))),
            w.say("{friend}", w.pick(("I am sorry too. Let's take turns.",
                                       "You are right. It is more fun together.",
                                       "Let's share it. You go first."))),
        ),
        w.paragraph(
            w.one("So they took turns with the {thing} all afternoon.",
                  "They used the {thing} together, and it was twice as much fun.",
                  "They cleaned the {thing} and shared it for the rest of the day."),
            w.one("Afterwards they ate {food} under a big tree.",
                  "By sunset they were laughing again."),
        ),
    ]


def arc_making(w: StoryWriter) -> list[str]:
    event = w.pick(("the spring festival", "{friend}'s birthday", "the harvest fair",
                    "the village party", "the big parade", "the winter market",
                    "the summer picnic", "the school show"))
    made = w.pick(("a giant cake", "a paper lantern", "a wooden boat", "a colorful banner",
                   "a kite shaped like a dragon", "a puppet theater", "a new song",
                   "a quilt with a hundred patches", "a sandcastle with a moat",
                   "a birdhouse", "a flower crown", "a model of the whole village"))
    return [
        w.paragraph(
            w.one(f"Soon it would be {event}, and {{hero}} wanted to make {made}.",
                  f"{{hero}} had a plan: {{he}} would make {made} for {event}."),
            w.say("{hero}", f"I will make {made}. It will be the best one ever!"),
            w.one("{He} gathered everything {he} needed.",
                  "{He} worked from morning until night."),
        ),
        w.paragraph(
            w.one("But the night before, disaster struck.", "But then something went wrong."),
            w.one("A storm blew through the village and broke it into pieces.",
                  "The {color} paint spilled all over it.",
                  "{He} tripped on the step, and it fell apart.",
                  "A hungry goat wandered in and nibbled one corner."),
            w.say("{hero}", w.pick(("Now it is ruined!", "All my work is gone!",
                                     "What am I going to do now?")), "shouted"),
            w.one("{He} sat down and felt {bad}.", "{He} wanted to give up."),
        ),
        w.paragraph(
            w.one("Then {friend} came over.", "In the morning, {friend} knocked on the door."),
            w.say("{friend}", w.pick(("We can fix it together.", "Let me help you.",
                                       "It is not ruined. It just needs some love."))),
            w.one("They worked together as fast as they could.",
                  "{friend} held the pieces while {hero} put them back together."),
            w.one(f"When {event} began, {made} looked even better than before.",
                  f"Everyone at {event} gathered around to look."),
            w.say("{hero}", "I could not have done it without you, {friend}."),
        ),
    ]


def arc_journey(w: StoryWriter) -> list[str]:
    goal = w.pick(("a golden apple", "the rarest flower in the world", "a singing stone",
                   "a map to the stars", "the oldest tree in the forest", "a lost bell",
                   "the source of the river", "a well that granted wishes",
                   "a rainbow fish", "the northern lights"))
    obstacle, way = w.pick((
        ("a wide, rushing river", "found a log and crossed it carefully"),
        ("a steep, rocky hill", "climbed slowly and helped each other"),
        ("a dark and tangled forest", "followed the sound of the birds"),
        ("a grumpy troll on a bridge", "asked the troll politely, and it let them pass"),
        ("a thick fog", "held hands and followed the path"),
        ("a field of deep snow", "made snowshoes out of branches"),
    ))
    return [
        w.paragraph(
            w.one(f"One day, {{hero}} heard a story about {goal}.",
                  f"{{hero}}'s grandmother once told {{him}} about {goal}."),
            w.say("{hero}", f"I want to find {goal}!"),
            w.say("{friend}", "Then I will come with you.", w.pick(("said", "replied"))),
            w.one("They packed {food} and set off at dawn.",
                  "They filled a bag with {food} and started walking."),
        ),
        w.paragraph(
            w.one(f"After a long walk, they came to {obstacle}.",
                  f"Soon they reached {obstacle}."),
            w.say("{friend}", "How will we ever get past this?", "asked"),
            w.one(f"They thought hard, and then they {way}.",
                  f"It took a long time, but they {way}."),
        ),
        w.paragraph(
            w.one(f"At last, beyond {{place}}, they found {goal}.",
                  f"At the very end of the path, there was {goal}."),
            w.one("It was more beautiful than anything they had ever seen.",
                  "They stood still and stared."),
            w.say("{hero}", w.pick(("It was worth every step.", "We did it, {friend}!",
                                     "I will never forget this day."))),
            w.one("Then they walked home together, tired and {good}.",
                  "On the way home, they sang all the songs they knew."),
        ),
    ]


def arc_race(w: StoryWriter) -> list[str]:
    contest = w.pick(("a race around the lake", "a singing contest", "a pie contest",
                      "a boat race on the river", "a spelling contest", "a kite contest",
                      "a dance contest", "a swimming race", "a drawing contest"))
    return [
        w.paragraph(
            w.one(f"One {{season}}, the whole town was talking about {contest}.",
                  f"A poster in {{place}} said there would be {contest}."),
            w.say("{hero}", "I am going to win!", "shouted"),
            w.one("Every day {he} practiced at {place}.",
                  "{He} practiced every morning and every evening."),
        ),
        w.paragraph(
            w.one("On the big day, {hero} felt {bad}.",
                  "When the day came, {his} heart was beating fast."),
            w.one("{friend} was in the contest too, and {fhe} was very good.",
                  "There were many others, and some of them were older and faster."),
            w.say("{friend}", "Good luck, {hero}. Just do your best."),
        ),
        w.paragraph(
            w.pick((
                w.one("{hero} did {his} very best, and to {his} surprise, {he} won!",
                      "In the end, {hero} came first, and everyone cheered."),
                w.one("{hero} did not win. {friend} came first.",
                      "{hero} came second, just behind {friend}."),
            )),
            w.say("{hero}", w.pick(("Well done, {friend}! You were wonderful.",
                                     "That was so much fun. Let's do it again next year!",
                                     "Winning is nice, but practicing with you was the best "
                                     "part."))),
            w.one("Then they ate {food} together and watched the sunset.",
                  "They walked home side by side, talking about next year."),
        ),
    ]


def arc_new_friend(w: StoryWriter) -> list[str]:
    return [
        w.paragraph(
            w.one("{When}, a new family moved in next door.",
                  "{When}, {hero} saw someone new at {place}."),
            w.one("It was {friend_intro}. {fHe} stood all alone and did not say a word.",
                  "The newcomer was {friend_intro}, and {fhe} looked very {bad}."),
        ),
        w.paragraph(
            w.one("{hero} wanted to say hello, but {he} felt shy.",
                  "{hero} watched from far away for a long time."),
            w.one("At last, {he} walked over.", "Finally, {he} gathered {his} courage."),
            w.say("{hero}", w.pick(("Hello! My name is {hero}. What is your name?",
                                     "Hi! Would you like to {activity} with me?",
                                     "Do you want to come to {place} with me?"))),
            w.say("{friend}", w.pick(("I am {friend}. I don't know anyone here yet.",
                                       "I would like that very much.",
                                       "Really? Nobody has asked me before."))),
        ),
        w.paragraph(
            w.one("They spent the whole day {activity_ing}.",
                  "{hero} showed {friend} {place}, {place2} and the secret path between them."),
            w.one("{friend} taught {hero} a new game from {fhis} old home.",
                  "{friend} was very good at it, and {hero} learned a lot."),
            w.say("{friend}", "I am so glad you came to say hello."),
        ),
    ]


def arc_storm(w: StoryWriter) -> list[str]:
    return [
        w.paragraph(
            w.one("One {season} evening, dark clouds rolled over the hills.",
                  "{When}, the wind began to howl."),
            w.one("Rain hammered on the roof, and thunder rumbled.",
                  "Soon the rain was falling so hard that the streets turned into rivers."),
            w.say("{hero}", w.pick(("I hope everyone is safe.", "What a terrible storm!",
                                     "Listen to that wind!"))),
        ),
        w.paragraph(
            w.one("Then {hero} heard a knock. It was {friend}, soaking wet.",
                  "Through the window, {hero} saw {friend} running through the rain."),
            w.say("{friend}", w.pick(("The river is rising, and my house is flooded!",
                                       "The wind blew my roof away!",
                                       "I can't find my way home in this storm!"))),
            w.say("{hero}", w.pick(("Come inside, quickly! You can stay with me.",
                                     "Come in and get warm by the fire."))),
        ),
        w.paragraph(
            w.one("{hero} gave {friend} a dry blanket and a bowl of {food}.",
                  "They sat by the fire and told stories while the storm roared outside."),
            w.one("In the morning, the sky was clear and {color}.",
                  "By morning, the storm was gone."),
            w.one("Together they helped fix {friend}'s house.",
                  "All the neighbors came to help clean up {place}."),
        ),
    ]


def arc_mystery(w: StoryWriter) -> list[str]:
    found, secret = w.pick((
        ("a small door hidden in the garden wall", "a tiny room full of old toys"),
        ("an old map with a red cross on it", "a box of letters from long ago"),
        ("a large speckled egg", "a baby bird that needed a home"),
        ("a bottle with a note inside", "a message from a child across the sea"),
        ("a strange glowing stone", "a firefly nest deep in the roots of a tree"),
        ("a set of footprints in the snow", "a family of foxes sleeping in a hollow"),
        ("a rusty key with a ribbon", "a music box that still played a song"),
    ))
    return [
        w.paragraph(
            w.one(f"{{When}}, while {{activity_ing}} at {{place}}, {{hero}} found {found}.",
                  f"{{When}}, {{hero}} noticed {found}."),
            w.say("{hero}", "What could this be?", "asked"),
            w.one("{He} ran to tell {friend}.", "{He} could not wait to show {friend}."),
        ),
        w.paragraph(
            w.say("{friend}", w.pick(("We have to find out where it leads!",
                                       "Maybe it is a secret!", "Let's be careful."))),
            w.one("They followed every clue.", "They searched from {place} to {place2}."),
            w.one("It got late, and they were tired, but they did not give up.",
                  "Twice they took a wrong turn and had to go back."),
        ),
        w.paragraph(
            w.one(f"At last they discovered {secret}.", f"Finally they found it: {secret}."),
            w.say("{hero}", w.pick(("This is the best secret ever!", "I can't believe it!",
                                     "Let's keep it safe.")), "shouted"),
            w.one("They promised to take care of it together.",
                  "They told their families, and everyone was amazed."),
        ),
    ]


def arc_mistake(w: StoryWriter) -> list[str]:
    broken = w.pick(("{friend}'s {thing}", "the vase on the table", "the kitchen window",
                     "grandmother's teapot", "the fence in the garden", "the school clock"))
    return [
        w.paragraph(
            w.one(f"{{When}}, {{hero}} was {{activity_ing}} too close to the house, and {{he}} "
                  f"broke {broken}.",
                  f"{{When}}, {{hero}} bumped into {broken}, and it cracked."),
            w.one("{He} looked around. Nobody had seen.", "{His} heart was pounding."),
            w.one("{He} hid the pieces {spot}.", "{He} ran away and said nothing."),
        ),
        w.paragraph(
            w.one("But all day long, {hero} felt {bad}.",
                  "That evening {he} could not eat {his} {food}."),
            w.say("{friend}", "You are very quiet today. Is something wrong?", "asked"),
            w.one("{hero} did not answer.", "{hero} looked at the floor."),
        ),
        w.paragraph(
            w.one("At last, {hero} could not keep the secret any longer.",
                  "The next morning, {hero} decided to tell the truth."),
            w.say("{hero}", f"I broke {broken}. I am very sorry."),
            w.say("{friend}", w.pick(("Thank you for telling me the truth.",
                                       "Accidents happen. Let's fix it together.",
                                       "I am glad you told me."))),
            w.one("They fixed it with glue and patience, and {hero} felt light again.",
                  "{hero} helped to make it right, and the heavy feeling went away."),
        ),
    ]


def arc_learning(w: StoryWriter) -> list[str]:
    skill = w.pick(("swim", "ride a bicycle", "whistle", "read", "play the violin", "juggle",
                    "tie {his} shoes", "bake bread", "climb the rope", "skate",
                    "row a boat", "speak a new language", "fly a kite"))
    return [
        w.paragraph(
            w.one(f"{{hero}} wanted to learn to {skill}, but it was very hard.",
                  f"All of {{his}} friends knew how to {skill}. {{hero}} did not."),
            w.say("{hero}", f"I will never learn to {skill}!", w.pick(("said", "shouted"))),
        ),
        w.paragraph(
            w.one("{He} tried once, and {he} failed.", "The first time, {he} fell right over."),
            w.one("{He} tried again, and {he} failed again.",
                  "The second time was no better."),
            w.say("{friend}", w.pick(("Everyone is bad at something at first.",
                                       "Try a little every day. You will see.",
                                       "Watch me. Go slowly, like this."))),
        ),
        w.paragraph(
            w.one("So {hero} practiced every day at {place}.",
                  "Day after day, {hero} kept trying, even when it rained."),
            w.one(f"And one {{weather}} morning, {{he}} could {skill}!",
                  f"After many weeks, {{he}} was finally able to {skill}."),
            w.say("{hero}", w.pick(("Look at me! I can do it!", "I did it, {friend}!",
                                     "Practice really works!")), "shouted"),
        ),
    ]


def arc_garden(w: StoryWriter) -> list[str]:
    crop = w.pick(("carrots", "pumpkins", "tomatoes", "beans", "potatoes", "strawberries",
                   "cabbages", "onions", "radishes", "lettuce", "cucumbers", "peppers",
                   "melons", "turnips", "beetroots", "sunflowers", "herbs"))
    pest = w.pick(("a family of slugs", "a hungry rabbit", "a flock of crows", "a late frost",
                   "a long dry spell", "a mischievous goat", "aphids on every leaf"))
    return [
        w.paragraph(
            w.one(f"In {{season}}, {{hero}} planted a row of {crop} behind the house.",
                  f"{{hero}} dug a little garden and planted {crop}."),
            w.one("{He} watered them every morning and pulled out every weed.",
                  "Every evening {he} checked to see whether anything had sprouted."),
            w.say("{hero}", f"Grow, little {crop}, grow!"),
        ),
        w.paragraph(
            w.one(f"But then came {pest}.", f"One morning {{hero}} discovered {pest}."),
            w.one("Half of the leaves were gone.", "The garden looked sad and ragged."),
            w.say("{hero}", w.pick(("What shall I do?", "All my hard work, wasted!",
                                     "This is not fair!"))),
            w.say("{friend}", w.pick((
                "My grandfather knew a trick for that. Let me show you.",
                "Don't give up. Gardens need patience.",
                "We can build a fence and try again."))),
        ),
        w.paragraph(
            w.one("They built a little fence out of sticks and string.",
                  "They covered the rows with an old net and put up a scarecrow."),
            w.one(f"By the end of {{season}}, the {crop} were big and ripe.",
                  f"Weeks later, there were more {crop} than {{hero}} could count."),
            w.one(f"{{hero}} gave a basket of {crop} to every neighbor on the street.",
                  f"They cooked the {crop} and invited everyone to a feast."),
        ),
    ]


def arc_market(w: StoryWriter) -> list[str]:
    price = w.pick(NUMBERS)
    return [
        w.paragraph(
            w.one("On {day}, {hero} went to the market with {number} coins in {his} pocket.",
                  "{hero}'s mother gave {him} a list and sent {him} to the market."),
            w.one("{He} needed {food}, {food} and a loaf of bread.",
                  "The list said: {food}, {food}, and something sweet."),
            w.one("The market was loud and busy, and the stalls were full of {color} awnings.",
                  "Merchants were calling out their prices, and the air smelled of {smell}."),
        ),
        w.paragraph(
            w.one(f"At the last stall, {{he}} saw {{a_thing}}. It cost {price} coins.",
                  f"In a shop window, {{hero}} saw {{a_thing}} for {price} coins."),
            w.say("{hero}", "Oh, how I wish I could buy that!", "whispered"),
            w.one("But if {he} bought it, there would be no money for the shopping.",
                  "{He} counted {his} coins twice. It was not enough for both."),
        ),
        w.paragraph(
            w.one("{hero} bought everything on the list and walked home.",
                  "{He} turned away and did the shopping instead."),
            w.one("When {he} got home, {his} mother was so {good} that she gave {him} a hug.",
                  "At home, {friend} was waiting with a surprise."),
            w.one("A week later, on {his} birthday, there was {a_thing} wrapped in {color} paper.",
                  "Later, {he} saved {his} coins, and by {month} {he} could buy the {thing}."),
            w.say("{hero}", "This is the best surprise ever!"),
        ),
    ]


def arc_lost_pet(w: StoryWriter) -> list[str]:
    pet = w.pick(("puppy", "kitten", "rabbit", "hamster", "parrot", "tortoise", "goat", "pony",
                  "duckling", "guinea pig", "ferret", "lamb"))
    pet_name = w.pick(("Biscuit", "Pepper", "Muffin", "Pickle", "Button", "Noodle", "Pudding",
                       "Sprout", "Waffle", "Clover", "Bramble", "Pumpkin", "Toffee", "Sausage"))
    return [
        w.paragraph(
            w.one(f"{{hero}} had a {pet} named {pet_name}.",
                  f"{{hero}}'s best friend in the whole world was a {pet} called {pet_name}."),
            w.one(f"One {{weather}} morning, {pet_name} was gone. The gate was open.",
                  f"{{When}}, {{hero}} went to feed {pet_name}, but the basket was empty."),
            w.say("{hero}", f"{pet_name}! Where are you?", "shouted"),
        ),
        w.paragraph(
            w.one("{hero} and {friend} made posters and put them up all over town.",
                  "{hero} asked everyone at {place} if they had seen a little {color} "
                  f"{pet}."),
            w.say("{friend}", w.pick((f"I think I saw a {pet} near {{place2}}.",
                                       "Animals often hide when they are scared.",
                                       "Let's listen carefully. Maybe we will hear it."))),
            w.one("They searched until the sun went down.",
                  "They looked in every garden and every hedge."),
        ),
        w.paragraph(
            w.one("Just as they were about to give up, they heard a tiny sound from {spot}.",
                  f"Then {{friend}} pointed. There was {pet_name}, curled up {{spot}}."),
            w.say("{hero}", f"{pet_name}! You silly thing! I missed you so much!", "shouted"),
            w.one(f"{pet_name} licked {{hero}}'s nose, and everyone laughed.",
                  f"{{hero}} carried {pet_name} home and fixed the latch on the gate."),
        ),
    ]


def arc_wish(w: StoryWriter) -> list[str]:
    giver = w.pick(("an old woman with a silver cane", "a tiny fairy with glass wings",
                    "a talking fish", "a wise old owl", "a shooting star", "a genie in a lamp",
                    "a friendly giant", "a little wooden frog that could speak"))
    wish = w.pick(("to fly like a bird", "to be the tallest in town", "to have all the toys "
                   "in the world", "to never go to bed", "to eat cake every day",
                   "to be invisible", "to talk to animals", "for it to snow in summer"))
    return [
        w.paragraph(
            w.one(f"{{When}}, {{hero}} met {giver} at {{place}}.",
                  f"{{When}}, {{hero}} helped {giver} who was stuck in a net."),
            w.say("the stranger", "Because you were kind, I will grant you one wish."),
            w.one("{hero} thought and thought.", "{hero} could hardly believe it."),
            w.say("{hero}", f"I wish {wish}!", "shouted"),
        ),
        w.paragraph(
            w.one("There was a flash of light, and the wish came true.",
                  "All at once, everything changed."),
            w.one("At first it was wonderful.", "For one whole day, it was the best thing ever."),
            w.one("But soon {hero} felt {bad}. {friend} could not play with {him} anymore.",
                  "But by evening, things had gone wrong, and {hero} missed the way things were."),
        ),
        w.paragraph(
            w.say("{hero}", "Please, I would like everything to be as it was before."),
            w.one("The stranger smiled, and everything went back to normal.",
                  "With a soft pop, the magic was gone."),
            w.one("{hero} ran to find {friend}, and they went to {activity} together.",
                  "{hero} decided that {his} life was pretty wonderful just as it was."),
        ),
    ]


def arc_camping(w: StoryWriter) -> list[str]:
    stars = w.pick(("the Great Bear", "the Hunter", "the Swan", "the Little Dipper",
                    "the Milky Way", "the North Star", "a bright red planet"))
    return [
        w.paragraph(
            w.one("One {season} night, {hero} and {friend} went camping near {place}.",
                  "{hero} and {friend} put up a small tent at the edge of {place}."),
            w.one("They made a campfire and toasted bread on long sticks.",
                  "They cooked {food} over the fire and drank hot cocoa."),
        ),
        w.paragraph(
            w.one("When it got dark, strange noises came from the trees.",
                  "Later, something rustled right behind the tent."),
            w.say("{friend}", "What was that?", "whispered"),
            w.say("{hero}", "Maybe it is a bear!", "whispered"),
            w.one("They held their breath. Out of the bushes came a small hedgehog.",
                  "{hero} shone the lantern, and there was only a curious raccoon."),
            w.one("They laughed until their tummies hurt.", "They giggled with relief."),
        ),
        w.paragraph(
            w.one(f"Then they lay on their backs and looked up at {stars}.",
                  f"{{friend}} pointed at the sky and showed {{hero}} {stars}."),
            w.say("{hero}", w.pick(("There are more stars than grains of sand.",
                                     "I feel so small, and so happy.",
                                     "Let's come back every year."))),
            w.one("They fell asleep to the sound of the crackling fire.",
                  "They talked softly until their eyes closed."),
        ),
    ]


def arc_voyage(w: StoryWriter) -> list[str]:
    ship = w.pick(("a little red sailboat", "an old fishing boat", "a raft made of barrels",
                   "a tall ship with white sails", "a rowing boat with a patched sail"))
    island = w.pick(("an island shaped like a turtle", "a sandy island with one palm tree",
                     "an island covered in purple flowers", "a rocky island full of puffins",
                     "an island where the sand was pink"))
    return [
        w.paragraph(
            w.one(f"{{hero}} and {{friend}} set sail in {ship}.",
                  f"{{When}}, {{hero}} pushed {ship} into the water and climbed aboard."),
            w.one("The waves were gentle, and seagulls followed them.",
                  "The wind filled the sail, and the shore grew smaller and smaller."),
            w.say("{friend}", "Which way shall we go, captain?", "asked"),
            w.say("{hero}", "Toward the horizon!", "shouted"),
        ),
        w.paragraph(
            w.one("Suddenly, the sky turned dark and the waves grew tall.",
                  "In the afternoon, a thick fog rolled over the sea."),
            w.one("The boat rocked from side to side.", "They could not see the shore anymore."),
            w.say("{friend}", "I am scared!", "shouted"),
            w.say("{hero}", w.pick(("Hold on tight! We will be fine.",
                                     "Look at the compass. We just have to keep going north."))),
        ),
        w.paragraph(
            w.one(f"When the sea calmed down, they found {island}.",
                  f"At last they saw land: {island}."),
            w.one("They explored the beach, collected shells and swam in the warm water.",
                  "They ate {food} on the sand and watched crabs scuttle past."),
            w.one("In the evening, the wind carried them safely back to the harbor.",
                  "Then they sailed home, their hearts full of stories."),
        ),
    ]


def arc_dragon(w: StoryWriter) -> list[str]:
    return [
        w.paragraph(
            w.one("The people of the kingdom were afraid of the dragon who lived on the mountain.",
                  "Every night, smoke rose from the dragon's cave above the village."),
            w.say("the king", "Who will be brave enough to climb the mountain?"),
            w.one("Nobody said a word, except {hero}.", "All the knights looked at their boots."),
            w.say("{hero}", "I will go.", w.pick(("said", "replied"))),
        ),
        w.paragraph(
            w.one("{hero} climbed for three days, with {friend} by {his} side.",
                  "The path was steep, and the wind was cold, but {hero} kept going."),
            w.one("At the top, the dragon was sitting alone, crying big smoky tears.",
                  "At the cave, they found the dragon curled up and looking miserable."),
            w.say("{hero}", "Why are you crying?", "asked"),
            w.say("the dragon", w.pick(("Everyone runs away from me. I have no friends.",
                                         "I have a thorn in my foot, and nobody will help me.",
                                         "I am cold. My fire has gone out."))),
        ),
        w.paragraph(
            w.one("{hero} was kind to the dragon and helped it.",
                  "{hero} sat down next to the dragon and listened."),
            w.one("The dragon flew them home on its back, high above the clouds.",
                  "The next day, the dragon came to the village, and everyone cheered."),
            w.one("From then on, the dragon kept the village warm every winter.",
                  "Now the children of the kingdom ride on the dragon every {day}."),
        ),
    ]


def arc_grandparents(w: StoryWriter) -> list[str]:
    dish = w.pick(("plum dumplings", "apple strudel", "potato pancakes", "fish soup",
                   "cherry pie", "lemon cake", "vegetable curry", "bread with seeds",
                   "sweet rice", "spinach pie", "honey biscuits", "mushroom risotto"))
    return [
        w.paragraph(
            w.one("Every {season}, {hero} visited {his} grandparents in the countryside.",
                  "On {day}, {hero} took the train to see {his} grandmother."),
            w.one(f"Grandmother was famous for her {dish}.",
                  f"Nobody in the world made {dish} like Grandfather."),
            w.say("{hero}", f"Will you teach me how to make {dish}?", "asked"),
        ),
        w.paragraph(
            w.one("They measured flour, cracked eggs and stirred the big pot.",
                  "They chopped, mixed and tasted, and the kitchen got very messy."),
            w.one("But {hero} forgot to watch the oven, and the first batch burned.",
                  "{hero} used salt instead of sugar by mistake."),
            w.say("{hero}", "I ruined it!", "shouted"),
            w.say("Grandmother", w.pick(("Every cook burns something. Let's start again.",
                                          "When I was your age, I did the same thing.",
                                          "Mistakes are just part of the recipe."))),
        ),
        w.paragraph(
            w.one(f"The second batch of {dish} was perfect.",
                  f"This time the {dish} came out golden and smelled wonderful."),
            w.one("They ate together at the big wooden table while {sound}.",
                  "The whole family came to taste it, and there was nothing left."),
            w.one("{hero} wrote the recipe in {his} notebook so {he} would never forget.",
                  "When {hero} went home, {he} carried the recipe like a treasure."),
        ),
    ]


# What each kind of story teaches, picked for its last line.
MORALS = {
    "arc_lost_thing": ["it is good to ask for help", "two friends can find anything",
                       "you should take good care of the things you love"],
    "arc_fear": ["being brave does not mean you are never scared",
                 "things are often less scary than they seem", "a friend makes you braver"],
    "arc_help_friend": ["friends are there to help each other", "kindness comes back to you",
                        "a calm head can solve a hard problem"],
    "arc_sharing": ["sharing makes everyone happier", "saying sorry can mend a friendship",
                    "things are more fun when you share them"],
    "arc_making": ["every mistake can be fixed", "working together makes hard things easy",
                   "it is fine to ask a friend for help"],
    "arc_journey": ["the journey matters as much as the goal",
                    "good friends make a long road short",
                    "you never know what you can do until you try"],
    "arc_race": ["doing your best is what matters", "a good friend is happy when you win",
                 "practice makes you better, one day at a time"],
    "arc_new_friend": ["a single hello can start a friendship", "it is fine to be different",
                       "new friends can teach you new things"],
    "arc_storm": ["home is wherever your friends are", "neighbors are there for each other",
                  "after every storm, the sun comes out again"],
    "arc_mystery": ["curiosity leads to wonderful things", "secrets are best shared with friends",
                    "it pays to keep your eyes open"],
    "arc_mistake": ["it is always better to tell the truth",
                    "a mistake is easier to fix than a lie",
                    "being honest makes the heart light"],
    "arc_learning": ["trying again is how you learn", "patience pays off",
                     "everyone is bad at something at first"],
    "arc_garden": ["patience pays off", "good things grow slowly",
                   "what you grow is best when you share it"],
    "arc_market": ["the best things are worth waiting for", "doing your job well feels good",
                   "it is wise to spend carefully"],
    "arc_lost_pet": ["you should never give up on someone you love",
                     "a good friend helps you look", "small friends need big care"],
    "arc_wish": ["your own life is already full of wonderful things",
                 "be careful what you wish for", "friends are worth more than magic"],
    "arc_camping": ["the dark is not so scary with a friend", "the world is full of wonders",
                    "the best nights are spent with friends"],
    "arc_voyage": ["courage is staying calm when the waves are high",
                   "the sea is beautiful but must be respected", "adventures are best shared"],
    "arc_dragon": ["kindness is stronger than fear", "nobody is as scary as the stories say",
                   "everyone needs a friend, even a dragon"],
    "arc_grandparents": ["mistakes are part of learning", "old recipes keep families together",
                         "the best things are made with love"],
}

ARCS = [arc_lost_thing, arc_fear, arc_help_friend, arc_sharing, arc_making, arc_journey,
        arc_race, arc_new_friend, arc_storm, arc_mystery, arc_mistake, arc_learning,
        arc_garden, arc_market, arc_lost_pet, arc_wish, arc_camping, arc_voyage, arc_dragon,
        arc_grandparents]


# ---- the corpus ----

BYTES_PER_MB = 1_000_000


def generate_corpus(size_mb: float, seed: int) -> Iterator[str]:
    """Yield stories (one document each) until their UTF-8 size reaches `size_mb` MB.

    Deterministic: the same (size_mb, seed) always gives the same stories, and a smaller size
    gives a prefix of a larger one. No story is repeated.
    """
    writer = StoryWriter(seed)
    target = int(size_mb * BYTES_PER_MB)
    seen: set[bytes] = set()
    written = 0
    while written < target:
        story = writer.story()
        key = hashlib.blake2b(story.encode("utf-8"), digest_size=8).digest()
        if key in seen:  # astronomically rare, but "no two stories identical" is a promise
            continue
        seen.add(key)
        written += len(story.encode("utf-8"))
        yield story


def write_sample(path: str | Path, size_mb: float, seed: int,
                 separator: str = "<|endoftext|>") -> int:
    """Write the corpus to `path`, stories separated by `separator` lines; return bytes written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        for i, story in enumerate(generate_corpus(size_mb, seed)):
            if i:
                f.write(f"\n{separator}\n")
            f.write(story)
        f.write("\n")
    tmp.replace(path)  # a half-written file never appears under the final name
    return path.stat().st_size


def main(argv: list[str] | None = None) -> None:
    from config import add_config_arguments, config_from_args

    parser = argparse.ArgumentParser(
        prog="python -m corpus.sample",
        description="Print or write the built-in story corpus (used when data/raw is empty).",
    )
    parser.add_argument("--out", help="write the corpus to this file instead of printing it")
    parser.add_argument("--head", type=int, default=0, metavar="N",
                        help="print only the first N stories")
    parser.add_argument("--size-mb", type=float, help="corpus size (default: data.sample_size_mb)")
    parser.add_argument("--seed", type=int, help="random seed (default: data.seed)")
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    cfg = config_from_args(args)
    size_mb = args.size_mb if args.size_mb is not None else cfg.data.sample_size_mb
    seed = args.seed if args.seed is not None else cfg.data.seed
    if args.out:
        size = write_sample(args.out, size_mb, seed, cfg.tokenizer.special_tokens[0])
        print(f"Wrote {size / BYTES_PER_MB:.1f} MB of stories to {args.out}")
        return
    for i, story in enumerate(generate_corpus(size_mb, seed)):
        if args.head and i >= args.head:
            break
        sys.stdout.write(story + "\n\n")


if __name__ == "__main__":
    from errors import run_cli

    run_cli(main)
