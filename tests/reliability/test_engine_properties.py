"""Property-based tests of the conversation engine: any sequence of any texts, the invariants hold.

Texts mix arbitrary unicode (no lone surrogates: they cannot arrive over HTTP as text) with what
phones really send: RTL and zero-width marks, emoji, keywords in odd case and punctuation, names,
ZIP codes real and fake, the reserved words.
"""

from __future__ import annotations

import pytest
from hypothesis import assume, given, strategies as st

from bots.engine import (
    AWAITING_CONFIRM, AWAITING_NAME, AWAITING_ZIP, IDLE, MAX_INVALID, STEPS, Consent, Inbound, Signed,
    RecordSignature, State, check_name, step,
)
from bots import channels
from config.keywords import HELP, OPT_IN, OPT_OUT, RESERVED, normalize_keyword


def render(replies, language, channel, catalog):
    return channels.get(channel).render(replies, language, catalog)

MARKS = ["\u200b", "\u200c", "\u200d", "\u200e", "\u200f", "\u202a", "\u202b", "\u202c", "\u202e", "\u2060",
         "\ufeff", "\u00ad", "\u0301", "\x00", "\t", "\n", " "]
EMOJI = ["👍", "✊🏽", "🇲🇽", "❤️", "👨‍👩‍👧", "🙏🏾"]
WORDS = sorted(RESERVED) + ["SCOMM", "FIRMA", "scomm", "Firma", "ESPAÑOL", "español", "English",
                             "please stop texting me", "no más mensajes", "We need to stop S-Comm now!",
                             "DREAM", "Sueño", "No", "Sí"]
NAMES = ["Ana María López", "José", "李小龍", "محمد علي", "O'Brien-Smith", "X", "12345", "Ana\u200fLópez"]
ZIPS = ["60601", "90210", "10001-1234", "00000", "99999", "6060", "606011", "60 601", "zip 60601"]

def noise(pieces, max_size):
    return st.lists(st.sampled_from(pieces), max_size=max_size).map("".join)


unicode_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)
decorated = st.builds(lambda pre, word, post: pre + word + post,
                      noise(MARKS + ["!", "¡", ".", "*", " "] + EMOJI, 3),
                      st.sampled_from(WORDS + NAMES + ZIPS),
                      noise(MARKS + ["!", "?", ".", " "] + EMOJI, 3))
texts = st.one_of(unicode_text, decorated, st.sampled_from(WORDS + NAMES + ZIPS))


@st.composite
def inbounds(draw):
    channel = draw(st.sampled_from(["sms", "telegram"]))
    text = draw(texts)
    command = argument = provider_opt = None
    if channel == "telegram" and draw(st.booleans()):
        command = draw(st.sampled_from(["start", "stop", "help", "language", None]))
        argument = draw(st.one_of(st.none(), st.sampled_from(["end-scomm", "nope", "es", "xx", ""]), unicode_text))
    if channel == "sms" and draw(st.integers(0, 9)) == 0:
        provider_opt = draw(st.sampled_from(["STOP", "START", "HELP", "stop", "bogus", " "]))
    return Inbound(channel=channel, address="+13125550101" if channel == "sms" else "4242", text=text,
                   command=command, argument=argument, provider_opt=provider_opt,
                   media=draw(st.integers(0, 7)) == 0,
                   language_hint=draw(st.one_of(st.none(), st.sampled_from(["es", "en-US", "pt-BR", "", "ES"]))))


def check_state(state: State, catalog) -> None:
    assert state.step in STEPS
    assert state.language in catalog.languages
    assert 0 <= state.invalid_count < MAX_INVALID
    if state.step == IDLE:
        assert state.campaign is None and state.pending_name is None and state.invalid_count == 0
    else:
        assert state.campaign in catalog.campaigns and not state.opted_out
    if state.step in (AWAITING_NAME, AWAITING_CONFIRM):
        assert state.pending_name is None
    if state.step == AWAITING_CONFIRM:
        assert state.last_signed is not None and state.last_signed.usable
    if state.step == AWAITING_ZIP:
        assert check_name(state.pending_name or "", catalog) == (state.pending_name, None)
    assert state.signed <= set(catalog.campaigns)


@pytest.fixture(scope="module")
def two_catalog(tmp_path_factory):
    from tests.support.campaigns import two_campaigns

    return two_campaigns(tmp_path_factory.mktemp("two"))


SIGNER = State(known=True, disclosed=True, signed=frozenset({"end-scomm"}),
               last_signed=Signed("end-scomm", "Ana López", "60601", "Chicago", "IL", "America/Chicago"))


@pytest.mark.parametrize("who", ["stranger", "signer of another campaign"])
@given(messages=st.lists(inbounds(), min_size=1, max_size=12))
def test_any_conversation_keeps_the_invariants(request, zips, who, messages):
    catalog = request.getfixturevalue("catalog" if who == "stranger" else "two_catalog")
    state = State() if who == "stranger" else SIGNER
    for inbound in messages:
        before = state
        result = step(before, inbound, catalog, zips)
        state = result.state
        check_state(state, catalog)
        word = normalize_keyword(inbound.text)
        provider = (inbound.provider_opt or "").strip().upper()

        # Replies render in both languages on the channel without error.
        assert all(isinstance(m, str) for m in render(result.replies, state.language, inbound.channel, catalog))

        # STOP means stop: an opted-out member gets nothing, except for the reserved words, a campaign
        # keyword or a bot command (a new, explicit request).
        plain = inbound.command is None and catalog.opt_outs.match(inbound.text) is not None
        if before.opted_out and result.replies:
            assert inbound.command is not None or word in RESERVED or word in catalog.keywords or plain, \
                (inbound, result)
        # Twilio already answered its own opt-out handling: we never send a second confirmation (a YES
        # Twilio took for its opt-in word still answers "Sign as ...?": that reply says it is signed).
        if provider in ("STOP", "START", "HELP"):
            assert result.replies == () or (provider == "START" and before.step == AWAITING_CONFIRM
                                            and [r.key for r in result.replies] == ["signed"])
        if provider == "STOP" or (not provider and inbound.command is None and (word in OPT_OUT or plain)) or \
                (not provider and inbound.command == "stop"):
            assert state.opted_out and state.step == IDLE
            assert any(isinstance(e, Consent) and e.kind == "opt_out" for e in result.effects)

        for effect in result.effects:  # what goes into the consent log fits its column, on any database
            if isinstance(effect, Consent):
                assert len(effect.cause) <= 64 and "\x00" not in effect.cause

        signatures = [e for e in result.effects if isinstance(e, RecordSignature)]
        assert len(signatures) <= 1
        for sig in signatures:
            # A signature only with a valid name and a real ZIP, for a campaign not signed before; or
            # with the name and ZIP of the person's latest signature, when they said YES to it.
            assert before.step in (AWAITING_ZIP, AWAITING_CONFIRM) and not before.opted_out
            assert check_name(sig.name, catalog) == (sig.name, None)
            if before.step == AWAITING_CONFIRM:
                last = before.last_signed
                assert (sig.name, sig.zip_code, sig.timezone) == (last.name, last.zip_code, last.timezone)
            else:
                assert sig.name == before.pending_name
            info = zips(sig.zip_code)
            assert info is not None and (info.city, info.state) == (sig.city, sig.state)
            assert sig.campaign == before.campaign and sig.campaign not in before.signed
            assert sig.campaign in state.signed
        if not signatures:
            assert state.signed == before.signed


@given(unicode_text, st.sampled_from(sorted(OPT_OUT)), noise(MARKS + EMOJI + ["!", " "], 4))
def test_stop_with_any_decoration_opts_out_from_any_state(catalog, zips, noise, stop, decoration):
    # Whatever came before (any text from any state), a decorated STOP opts out.
    state = step(State(), Inbound("sms", "+13125550101", "SCOMM"), catalog, zips).state
    state = step(state, Inbound("sms", "+13125550101", noise), catalog, zips).state
    text = decoration + stop.lower() + decoration
    assume(normalize_keyword(text) == stop)  # a combining mark glued to the word makes it another word
    result = step(state, Inbound("sms", "+13125550101", text), catalog, zips)
    assert result.state.opted_out
    assert [r.key for r in result.replies] == ["opted_out"]


@given(st.sampled_from(sorted(OPT_IN | HELP)), unicode_text)
def test_opted_out_member_hears_only_reserved_words(catalog, zips, reserved, other):
    state = step(State(), Inbound("sms", "+13125550101", "STOP"), catalog, zips).state
    result = step(state, Inbound("sms", "+13125550101", other), catalog, zips)
    word = normalize_keyword(other)
    if word not in RESERVED and word not in catalog.keywords and catalog.opt_outs.match(other) is None:
        assert result.replies == () and result.effects == ()
    assert step(state, Inbound("sms", "+13125550101", reserved), catalog, zips).replies
