"""Two-sentence stories with a coherent and an incoherent ending (spoken StoryCloze-style).

Each script is a setup sentence and its natural ending, with a named protagonist (pronouns
follow the name's gender) and optionally an object slot filled from a list of nouns that fit. An
incoherent ending is either

- ``event``: the ending of a script about something else, told of the same protagonist (the
  topic-level mismatch of tStoryCloze), or
- ``pronoun``: the right ending, but about someone of the other gender, who was never introduced
  (an entity mismatch).

>>> from speechunits.data.corpus.stories import make_story_pairs
>>> p = make_story_pairs(2, seed=0)[0]
>>> p.good.split(". ")[0] == p.bad.split(". ")[0]
True
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from speechunits.data.corpus.lexicon import Lexicon, load_lexicon

# Objects that fit each script ("baked a pie", "dropped the lamp"): lexicon nouns.
_BAKED = ("cake", "pie", "pizza", "muffin", "cupcake", "tart", "bagel", "pancake", "waffle", "biscuit", "brownie")
_FRAGILE = ("lamp", "mirror", "clock", "watch", "phone", "camera", "radio", "computer", "calculator",
            "telescope", "microscope", "flashlight", "vase", "plate", "cup", "mug", "teapot", "glass")
_GIFTS = ("doll", "kite", "ball", "puzzle", "drum", "guitar", "violin", "flute", "trumpet", "robot",
          "puppet", "toy", "necklace", "bracelet", "scarf", "sweater", "book", "camera", "watch")
_BOOKS = ("book", "novel", "magazine", "comic", "dictionary", "atlas", "textbook", "poem")
_VEHICLES = ("car", "bike", "bicycle", "truck", "van", "scooter", "motorcycle", "tractor", "boat", "wagon")

# (topic, setup, coherent ending, objects or None). {x} is the object, {a_x} with its article.
SCRIPTS: tuple[tuple[str, str, str, tuple[str, ...] | None], ...] = (
    ("baking", "{N} baked {a_x} for the party in the evening.",
     "All the guests said that the {x} was delicious.", _BAKED),
    ("rain", "{N} saw dark clouds over the town in the morning.",
     "{He} took an umbrella before {he} left the house.", None),
    ("lost_key", "{N} could not find the key to {his} car.",
     "After an hour, {he} found it under the sofa.", None),
    ("garden", "{N} planted some seeds in the garden in the spring.",
     "By the summer, beautiful flowers were growing there.", None),
    ("tired", "{N} worked in the factory for twelve hours.",
     "When {he} got home, {he} fell asleep on the couch.", None),
    ("thirsty", "{N} ran along the river on a hot afternoon.",
     "{He} was very thirsty, so {he} drank a bottle of water.", None),
    ("broken", "{N} dropped {his} {x} on the stone floor.",
     "When {he} picked it up, it was broken.", _FRAGILE),
    ("birthday", "{N} bought {a_x} as a birthday gift for {his} sister.",
     "{His} sister smiled and thanked {him} for the gift.", _GIFTS),
    ("cold", "{N} forgot {his} coat on a snowy winter day.",
     "{He} was shivering when {he} arrived at school.", None),
    ("exam", "{N} studied every night for the difficult exam.",
     "{He} was proud when {he} saw {his} good results.", None),
    ("dog_walk", "{N} took the dog for a long walk in the park.",
     "When they came back, the dog was tired and hungry.", None),
    ("bus_late", "{N} missed the bus in the morning.",
     "{He} had to walk to work and arrived late.", None),
    ("fishing", "{N} sat by the lake with a fishing rod all morning.",
     "In the afternoon, {he} finally caught a big fish.", None),
    ("painting", "{N} painted the walls of {his} bedroom blue.",
     "The next day, the paint was dry and the room looked new.", None),
    ("reading", "{N} borrowed {a_x} from the library.",
     "{He} read it every evening before {he} went to sleep.", _BOOKS),
    ("flat_tire", "{N} was riding {his} bike when a tire went flat.",
     "{He} pushed the bike home and fixed the tire.", None),
    ("concert", "{N} practiced the piano for the school concert.",
     "At the concert, everyone clapped when {he} finished.", None),
    ("spill", "{N} spilled a cup of coffee on {his} white shirt.",
     "{He} went home to wash the shirt and change.", None),
    ("noise", "{N} heard a strange noise in the attic at night.",
     "{He} climbed the stairs and found a small mouse.", None),
    ("market", "{N} went to the market to buy some fruit.",
     "{He} came home with a basket of apples and pears.", None),
    ("snow", "{N} woke up and saw snow everywhere outside.",
     "{He} put on {his} boots and built a snowman.", None),
    ("hungry_cat", "{N} heard the cat crying in the kitchen.",
     "{He} filled its bowl and the cat ate quickly.", None),
    ("lost_wallet", "{N} lost {his} wallet on the train.",
     "A kind stranger found it and gave it back to {him}.", None),
    ("beach", "{N} spent the whole day at the beach in the sun.",
     "In the evening, {his} face was red and hot.", None),
    ("letter", "{N} wrote a long letter to {his} old friend.",
     "A week later, {he} got a happy answer in the mail.", None),
    ("cooking", "{N} cooked soup for {his} sick grandmother.",
     "After she ate it, {his} grandmother felt much better.", None),
    ("dark", "{N} came home and the lights were not working.",
     "{He} found a candle and lit it in the dark.", None),
    ("sport", "{N} trained for months for the big race.",
     "On the day of the race, {he} ran faster than everyone.", None),
    ("present", "{N} wrapped {a_x} in colorful paper for {his} brother.",
     "{His} brother opened it and laughed with joy.", _GIFTS),
    ("plant", "{N} forgot to water the plant for many weeks.",
     "When {he} looked at it again, the leaves were dry and brown.", None),
    ("movie", "{N} watched a very scary movie late at night.",
     "Afterwards, {he} could not sleep and kept the light on.", None),
    ("moving", "{N} packed all {his} books into boxes.",
     "The next morning, a truck carried the boxes to {his} new house.", None),
    ("doctor", "{N} had a terrible cough for a whole week.",
     "{He} finally went to the doctor, who gave {him} some medicine.", None),
    ("bread", "{N} left the bread on the table for ten days.",
     "When {he} wanted to eat it, it was hard and old.", None),
    ("door", "{N} knocked on the door of the old cottage.",
     "After a moment, an old woman opened it and smiled.", None),
    ("vehicle", "{N} washed {his} {x} in front of the house.",
     "When {he} finished, the {x} was shiny and clean.", _VEHICLES),
)
_PRON = {"m": {"he": "he", "his": "his", "him": "him"}, "f": {"he": "she", "his": "her", "him": "her"}}


@dataclass(frozen=True)
class StoryPair:
    good: str
    bad: str
    type: str  # event or pronoun
    topic: str


def _fill(template: str, name: str, gender: str, x: str | None, lex: Lexicon) -> str:
    p = _PRON[gender]
    values = {"N": name, "x": x or "", "a_x": f"{lex.article(x)} {x}" if x else ""}
    for k, v in p.items():
        values[k], values[k.capitalize()] = v, v.capitalize()
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], template)


def make_story_pairs(n: int, seed: int, lex: Lexicon | None = None) -> list[StoryPair]:
    """``n`` story pairs: scripts in round robin, 70% ``event`` and 30% ``pronoun`` mismatches."""
    lex = lex or load_lexicon()
    rng = random.Random(f"speechunits-story:{seed}")
    names = lex.by_pos["name"]
    out: list[StoryPair] = []
    seen: set[str] = set()
    i = 0
    while len(out) < n:
        topic, setup, ending, objects = SCRIPTS[i % len(SCRIPTS)]
        i += 1
        for _ in range(50):
            name = rng.choice(names)
            g = name.tag("gender")
            x = rng.choice(objects) if objects else None
            first = _fill(setup, name.word, g, x, lex)
            good = f"{first} {_fill(ending, name.word, g, x, lex)}"
            if good not in seen:
                break
        seen.add(good)
        has_pronoun = re.search(r"\{(he|He|his|His|him)\}", ending) is not None
        if has_pronoun and rng.random() < 0.3:
            kind = "pronoun"
            wrong = _fill(ending, name.word, "f" if g == "m" else "m", x, lex)
        else:
            kind = "event"
            others = [s for s in SCRIPTS if s[0] != topic]
            _, _, other_end, other_objects = rng.choice(others)
            y = rng.choice(other_objects) if other_objects else None
            wrong = _fill(other_end, name.word, g, y, lex)
        out.append(StoryPair(good, f"{first} {wrong}", kind, topic))
    return out
