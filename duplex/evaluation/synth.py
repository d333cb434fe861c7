"""`inv eval`'s default set: 24 utterances with German reference translations, synthesised by flite and
espeak-ng in eight voices, clean and with seeded white noise at 20 and 10 dB SNR, written once as a
NeMo manifest + 16 kHz mono WAV files under the cache (built in a temp folder, renamed into place)
and reused while the definition and the files are unchanged.

References are written the way a person writes them ("7:45", "March 3rd", "25 dollars"); the
synthesiser is given the words to say where it might misread the digits (`spoken`)."""

from __future__ import annotations

import array
import hashlib
import json
import math
import os
import random
import shutil
import tempfile
import wave
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from ..tts import INSTALL, RATE, espeak, flite, missing
from .data import Dataset, EvalDataError, load

VERSION = 1
FOLDER = f"default-v{VERSION}"
FLITE = ("awb", "rms", "slt", "kal16")  # flite's 16 kHz voices
ESPEAK = ("en-us", "en-us+f3", "en-gb", "en-gb-scotland")
SNR_DB = {"clean": None, "snr20": 20.0, "snr10": 10.0}


@dataclass(frozen=True)
class Item:
    voice: str
    condition: str             # a key of SNR_DB
    text: str                  # the reference, as a person would write it
    translation: str           # German
    topics: tuple[str, ...] = ()   # "numbers", "names"
    spoken: str | None = None  # what the synthesiser is given when it differs from `text`


ITEMS = (
    Item("awb", "clean", "Good morning, Maria.", "Guten Morgen, Maria.", ("names",)),
    Item("rms", "clean", "The train to Edinburgh leaves at 7:45 on March 3rd, so please be at the station 15 "
         "minutes early.", "Der Zug nach Edinburgh fährt am 3. März um 7:45 Uhr ab, seien Sie also bitte 15 "
         "Minuten früher am Bahnhof.", ("numbers", "names"),
         "The train to Edinburgh leaves at seven forty five on March third, so please be at the station fifteen "
         "minutes early."),
    Item("slt", "clean", "It costs 25 dollars.", "Es kostet 25 Dollar.", ("numbers",),
         "It costs twenty five dollars."),
    Item("kal16", "clean", "Maria Garcia called this morning and asked whether the report could be ready by "
         "Friday afternoon.", "Maria Garcia hat heute Morgen angerufen und gefragt, ob der Bericht bis "
         "Freitagnachmittag fertig sein könnte.", ("names",)),
    Item("en-us", "clean", "Where is the station?", "Wo ist der Bahnhof?"),
    Item("en-us+f3", "clean", "Dr. Patel will see you at 10:15 on Tuesday, so please bring your insurance card.",
         "Dr. Patel empfängt Sie am Dienstag um 10:15 Uhr, bringen Sie also bitte Ihre Versichertenkarte mit.",
         ("numbers", "names"),
         "Doctor Patel will see you at ten fifteen on Tuesday, so please bring your insurance card."),
    Item("en-gb", "clean", "She was born in 1999.", "Sie wurde 1999 geboren.", ("numbers",),
         "She was born in nineteen ninety nine."),
    Item("en-gb-scotland", "clean", "John Smith and his sister visited Paris, Rome and Vienna during their long "
         "summer holiday last year.", "John Smith und seine Schwester haben letztes Jahr in ihrem langen "
         "Sommerurlaub Paris, Rom und Wien besucht.", ("names",)),
    Item("awb", "snr20", "The hotel room costs 120 dollars a night, but breakfast and parking are included in "
         "the price.", "Das Hotelzimmer kostet 120 Dollar pro Nacht, aber Frühstück und Parken sind im Preis "
         "inbegriffen.", ("numbers",),
         "The hotel room costs one hundred and twenty dollars a night, but breakfast and parking are included "
         "in the price."),
    Item("rms", "snr20", "Ask David Chen tomorrow.", "Fragen Sie morgen David Chen.", ("names",)),
    Item("slt", "snr20", "We walked along the river for two hours and then had lunch in a small cafe near the "
         "old bridge.", "Wir sind zwei Stunden am Fluss entlang spaziert und haben dann in einem kleinen Café "
         "bei der alten Brücke zu Mittag gegessen."),
    Item("kal16", "snr20", "Call me at 9:30.", "Ruf mich um 9:30 Uhr an.", ("numbers",), "Call me at nine thirty."),
    Item("en-us", "snr20", "Please send the package to 42 Baker Street in London before the end of next week.",
         "Bitte schicken Sie das Paket bis Ende nächster Woche an die Baker Street 42 in London.",
         ("numbers", "names"),
         "Please send the package to forty two Baker Street in London before the end of next week."),
    Item("en-us+f3", "snr20", "Is it raining in London?", "Regnet es in London?", ("names",)),
    Item("awb", "snr10", "Please close the window.", "Bitte schließen Sie das Fenster."),
    Item("rms", "snr10", "The forecast says it will be sunny and warm on Saturday, with temperatures around 25 "
         "degrees.", "Laut Wettervorhersage wird es am Samstag sonnig und warm, bei Temperaturen um die 25 Grad.",
         ("numbers",),
         "The forecast says it will be sunny and warm on Saturday, with temperatures around twenty five "
         "degrees."),
    Item("slt", "snr10", "I need 3 tickets.", "Ich brauche drei Tickets.", ("numbers",), "I need three tickets."),
    Item("kal16", "snr10", "Could you turn off the lights in the living room and lock the front door before you "
         "go to bed?", "Könntest du das Licht im Wohnzimmer ausschalten und die Haustür abschließen, bevor du "
         "ins Bett gehst?"),
    Item("en-gb", "snr10", "Thank you very much.", "Vielen Dank."),
    Item("en-gb-scotland", "snr10", "I live in Edinburgh.", "Ich wohne in Edinburgh.", ("names",)),
    Item("en-gb", "snr20", "My grandmother moved to Canada in 1965 and still writes me a long letter every "
         "month.", "Meine Großmutter ist 1965 nach Kanada gezogen und schreibt mir immer noch jeden Monat "
         "einen langen Brief.", ("numbers", "names"),
         "My grandmother moved to Canada in nineteen sixty five and still writes me a long letter every month."),
    Item("en-us", "clean", "Open the kitchen door.", "Öffnen Sie die Küchentür."),
    Item("en-us+f3", "snr10", "The conference in Berlin starts on June 14th, and about 300 people have already "
         "registered online.", "Die Konferenz in Berlin beginnt am 14. Juni, und rund 300 Menschen haben sich "
         "bereits online angemeldet.", ("numbers", "names"),
         "The conference in Berlin starts on June fourteenth, and about three hundred people have already "
         "registered online."),
    Item("en-gb-scotland", "snr20", "The meeting starts at noon.", "Die Besprechung beginnt um zwölf Uhr mittags."),
)


def definition(items: tuple[Item, ...]) -> str:
    """The hash a folder's built.json must name for the folder to be reused: any change to the set rebuilds it."""
    return hashlib.sha256(json.dumps([VERSION, RATE, SNR_DB, [asdict(i) for i in items]]).encode()).hexdigest()


DEFINITION = definition(ITEMS)


def ident(number: int, item: Item) -> str:
    return f"{item.voice.replace('+', '-')}-{item.condition}-{number:02d}"


def tags(item: Item) -> tuple[str, ...]:
    words = len(item.text.split())
    length = "short" if words <= 5 else "long" if words >= 15 else "medium"
    return ("flite" if item.voice in FLITE else "espeak-ng", item.voice, item.condition, *item.topics, length)


def default_set(cache: Path, say=print) -> Dataset:
    """The default set under `cache` (`cache`/default-v1/manifest.json): reused when built from this
    definition and its files are unchanged, else synthesised (a few seconds) and swapped in."""
    folder = Path(cache) / FOLDER
    found = _reuse(folder)
    if found is not None:
        return found
    absent = missing("flite", "espeak-ng", "sox")
    if absent:
        raise EvalDataError(f"the default evaluation set is synthesised with flite, espeak-ng and sox; "
                            f"not installed: {', '.join(absent)}", fix=INSTALL)
    folder.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".{FOLDER}.", dir=folder.parent))
    umask = os.umask(0)
    os.umask(umask)
    temp.chmod(0o777 & ~umask)  # mkdtemp's 0700 would follow it into place
    try:
        say(f"building the default evaluation set in {folder} (once)")
        _build(temp, say)
        _swap(temp, folder)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    found = _reuse(folder)
    if found is None:
        raise EvalDataError(f"{folder} did not read back as the default set it was built as",
                            fix=f"remove {folder} and run again")
    return found


def _reuse(folder: Path) -> Dataset | None:
    """The set in `folder` when its marker names this definition and the files match its fingerprint."""
    try:
        marker = json.loads((folder / "built.json").read_text(encoding="utf-8"))
        if marker.get("definition") != DEFINITION:
            return None
        found = load(folder / "manifest.json")
    except (OSError, ValueError, AttributeError, EvalDataError):
        return None
    if found.fingerprint != marker.get("fingerprint"):
        return None
    seconds = sum(u.duration or 0 for u in found.utterances)
    source = (f"duplex default set v{VERSION}: {len(found.utterances)} utterances, {seconds:.1f} s, flite "
              f"{'/'.join(FLITE)}, espeak-ng {'/'.join(ESPEAK)}, clean and white noise at 20/10 dB SNR")
    return replace(found, name="default", source=source)


def _build(folder: Path, say) -> None:
    (folder / "audio").mkdir()
    lines = []
    for number, item in enumerate(ITEMS, 1):
        name = ident(number, item)
        say(f"synthesising {number}/{len(ITEMS)}: {item.voice}, {item.condition}: {item.text}")
        clean = folder / "audio" / f"{name}.clean.wav"
        (flite if item.voice in FLITE else espeak)(item.spoken or item.text, item.voice, clean)
        with wave.open(str(clean), "rb") as w:
            pcm = w.readframes(w.getnframes())
        clean.unlink()
        snr = SNR_DB[item.condition]
        if snr is not None:
            pcm = noisy(pcm, snr, f"{FOLDER}/{name}")
        with wave.open(str(folder / "audio" / f"{name}.wav"), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(RATE)
            w.writeframes(pcm)
        lines.append({"id": name, "audio_filepath": f"audio/{name}.wav", "text": item.text,
                      "duration": round(len(pcm) / 2 / RATE, 3), "lang": "en", "translation": item.translation,
                      "translation_lang": "de", "tags": list(tags(item))})
    (folder / "manifest.json").write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines),
                                          encoding="utf-8")
    built = load(folder / "manifest.json")
    (folder / "built.json").write_text(json.dumps({"definition": DEFINITION, "fingerprint": built.fingerprint}),
                                       encoding="utf-8")


def noisy(pcm: bytes, snr_db: float, seed: str) -> bytes:
    """`pcm` with white Gaussian noise added at `snr_db` below the clip's own RMS (the whole clip's),
    scaled so the noise drawn has exactly that RMS; the same `seed` draws the same noise."""
    speech = array.array("h", pcm)
    rng = random.Random(seed)
    noise = [rng.gauss(0.0, 1.0) for _ in speech]
    scale = _rms(speech) / 10 ** (snr_db / 20) / _rms(noise)
    mixed = (max(-32768, min(32767, round(s + scale * n))) for s, n in zip(speech, noise, strict=True))
    return array.array("h", mixed).tobytes()  # clipped to int16: a loud peak plus noise may pass full scale


def _rms(samples) -> float:
    return math.sqrt(math.fsum(float(s) * s for s in samples) / len(samples))


def _swap(temp: Path, folder: Path) -> None:
    """`temp` becomes `folder`; an old `folder` (another definition, damaged) is moved aside first."""
    stale = None
    if folder.exists():
        stale = folder.with_name(f".{folder.name}.stale-{os.getpid()}")
        folder.rename(stale)
    try:
        temp.rename(folder)
    except OSError:
        if _reuse(folder) is None:  # not another build's complete set that won the race
            raise
    if stale is not None:
        shutil.rmtree(stale, ignore_errors=True)
