"""Opt-outs in plain words: what opts a member out as STOP does, what must not, and the phrase file a
translator edits (config/opt_outs.toml), checked when it is loaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from bots.engine import AWAITING_NAME, AWAITING_ZIP, Consent, Engine, Inbound, State
from config.campaigns import CampaignFileError, load_catalog
from config.settings import SHIPPED_OPT_OUTS


@pytest.fixture(scope="module")
def engine(catalog, zips):
    return Engine(catalog, zips)


def sms(text):
    return Inbound(channel="sms", address="+15551230000", text=text)


OPT_OUTS = [
    # the FCC's "any reasonable means", in the words members use
    ("please stop texting me", "STOP TEXTING ME"),
    ("Please STOP texting me!!", "STOP TEXTING ME"),
    ("stop texting me please", "STOP TEXTING ME"),
    ("Hi, can you please stop texting me? Thanks", "STOP TEXTING ME"),
    ("stop sending me messages", "STOP SENDING ME MESSAGES"),
    ("Stop sending me these text messages.", "STOP SENDING ME THESE TEXT MESSAGES"),
    ("stop sending messages", "STOP SENDING MESSAGES"),
    ("unsubscribe me", "UNSUBSCRIBE ME"),
    ("Unsubscribe me please", "UNSUBSCRIBE ME"),
    ("How do I unsubscribe?", "HOW DO I UNSUBSCRIBE"),
    ("remove me from this list", "REMOVE ME"),
    ("Please remove me from your list.", "REMOVE ME"),
    ("take me off your list", "TAKE ME OFF"),
    ("TAKE ME OFF THE LIST NOW", "TAKE ME OFF"),
    ("I don't want these messages", "DONT WANT THESE MESSAGES"),
    ("I do not want any more texts", "DO NOT WANT ANY MORE TEXTS"),
    ("Wrong number", "WRONG NUMBER"),
    ("stop it", "STOP IT"),
    ("stop please", "STOP"),
    ("Stop! Stop!", "STOP STOP"),
    ("no más mensajes", "NO MAS MENSAJES"),
    ("No mas mensajes por favor", "NO MAS MENSAJES"),
    ("NO MÁS MENSAJES!!!", "NO MAS MENSAJES"),
    ("No, no más mensajes", "NO MAS MENSAJES"),
    ("no más", "NO MAS"),
    ("ya no me manden mensajes", "YA NO ME MANDEN MENSAJES"),
    ("Ya no me manden más mensajes, por favor.", "YA NO ME MANDEN MAS MENSAJES"),
    ("no quiero recibir más mensajes", "NO QUIERO RECIBIR MAS MENSAJES"),
    ("No quiero recibir mas mensajes", "NO QUIERO RECIBIR MAS MENSAJES"),
    ("bórrenme de la lista", "BORRENME DE LA LISTA"),
    ("Borrenme de la lista porfa", "BORRENME DE LA LISTA"),
    ("sáquenme de su lista", "SAQUENME DE SU LISTA"),
    ("quiero darme de baja", "DARME DE BAJA"),
    ("dejen de mandarme mensajes", "DEJEN DE MANDARME"),
    ("PARAR POR FAVOR", "PARAR"),
    ("número equivocado", "NUMERO EQUIVOCADO"),
    ("\u2066please stop texting me\u2069", "STOP TEXTING ME"),
]

NOT_OPT_OUTS = [
    "We need to stop S-Comm now!",
    "How can I help stop deportations?",
    "Stop the deportations!",
    "Let's stop ICE from tearing families apart",
    "Don't stop texting me!",
    "Do not stop sending me messages, I love them",
    "no dejen de mandarme mensajes",
    "Nunca dejen de mandarme mensajes",
    "No más deportaciones",
    "Ya no más redadas",
    "Quiero firmar",
    "Ana López",
    "Stephanie Stopp",
    "Mercedes Alto Vargas",
    "Cancelaria Fin",
    "60601",
    "60601-1234",
    "help",
    "hello",
    "Please help",
    "I want to sign",
]


@pytest.mark.parametrize("text,cause", OPT_OUTS)
def test_plain_words_opt_out_as_stop_does(engine, text, cause):
    for before in (State(known=True), engine.step(State(), sms("SCOMM")).state,
                   engine.step(engine.step(State(), sms("SCOMM")).state, sms("Ana López")).state):
        step = engine.step(before, sms(text))
        assert [r.key for r in step.replies] == ["opted_out"], (text, before.step)
        assert step.state.opted_out and step.state.step == "idle"
        assert step.effects == (Consent("opt_out", cause),)


@pytest.mark.parametrize("text", NOT_OPT_OUTS)
def test_ordinary_sentences_do_not_opt_out(engine, catalog, text):
    assert catalog.opt_outs.match(text) is None
    for before in (State(known=True), engine.step(State(), sms("SCOMM")).state):
        step = engine.step(before, sms(text))
        assert not step.state.opted_out and "opted_out" not in [r.key for r in step.replies], text


def test_a_name_or_zip_answer_is_still_taken_as_one(engine):
    state = engine.step(State(), sms("SCOMM")).state
    step = engine.step(state, sms("Mercedes Alto Vargas"))
    assert step.state.step == AWAITING_ZIP and step.state.pending_name == "Mercedes Alto Vargas"
    assert engine.step(step.state, sms("60601")).effects[0].name == "Mercedes Alto Vargas"
    assert state.step == AWAITING_NAME


def test_a_stranger_who_opts_out_in_spanish_is_answered_in_spanish(engine):
    assert engine.step(State(), sms("no más mensajes")).state.language == "es"
    assert engine.step(State(), sms("please stop texting me")).state.language == "en"


def test_on_telegram_too(engine):
    state = engine.step(State(), Inbound("telegram", "42", command="start")).state
    step = engine.step(state, Inbound("telegram", "42", "Please stop sending me messages"))
    assert step.state.opted_out and [r.key for r in step.replies] == ["opted_out"]


# --- the phrase file --------------------------------------------------------------------------------


def with_phrases(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "opt_outs.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_translator_adds_a_phrase_without_python(tmp_path):
    shipped = SHIPPED_OPT_OUTS.read_text(encoding="utf-8")
    assert load_catalog().opt_outs.match("ya no quiero saber nada") is None
    added = shipped.replace('whole = [\n    "no más",', 'whole = [\n    "ya no quiero saber nada",\n    "no más",')
    assert added != shipped
    catalog = load_catalog(opt_outs_path=with_phrases(tmp_path, added))
    assert catalog.opt_outs.match("Ya no quiero saber nada!").phrase == "YA NO QUIERO SABER NADA"


@pytest.mark.parametrize("text,problem", [
    ('[en]\nphrases = ["stop"]\n[es]\n', "a phrase needs two words or more"),
    ('[en]\nphrases = ["stop [texting me"]\n[es]\n', "is not closed"),
    ('[en]\nphrases = ["stop texting] me"]\n[es]\n', "brackets do not pair up"),
    ('[en]\nphrases = ["stop texting/ me"]\n[es]\n', "empty choice"),
    ('[en]\nphrases = ["[please] [thanks]"]\nignore = ["please", "thanks"]\n[es]\n', "only of ignored words"),
    ('[en]\nphrases = "stop texting me"\n[es]\n', "must be a list"),
    ('[en]\nphrase = ["stop texting me"]\n[es]\n', "'phrase' is not known"),
    ('[en]\n', "the [es] table is missing"),
    ('[en]\n[es]\n[fr]\nphrases = ["arretez"]\n', "[fr] is not a language"),
    ('[en]\nphrases = ["a/b/c/d/e/f/g/h/i/j a/b/c/d/e/f/g/h/i/j a/b/c/d/e/f/g/h/i/j a/b/c/d"]\n[es]\n',
     "split it into shorter phrases"),
    ('[en\nphrases = ', "not valid TOML"),
])
def test_mistakes_in_the_phrase_file_are_named(tmp_path, text, problem):
    with pytest.raises(CampaignFileError) as exc:
        load_catalog(opt_outs_path=with_phrases(tmp_path, text))
    assert "opt_outs.toml" in str(exc.value) and problem in str(exc.value)


def test_every_shipped_phrase_is_read(catalog):
    assert catalog.opt_outs.count > 100
