"""The conversation engine as plain function calls: no database, no HTTP."""

from __future__ import annotations

import pytest

from bots.engine import (
    AWAITING_CONFIRM, AWAITING_NAME, AWAITING_ZIP, IDLE, Consent, Engine, ForStaff, Inbound, RecordSignature, State,
    check_name, check_zip,
)
from bots import channels


def render(replies, language, channel, catalog):
    return channels.get(channel).render(replies, language, catalog)


@pytest.fixture(scope="module")
def engine(catalog, zips):
    return Engine(catalog, zips)


def sms(text, **kw):
    return Inbound(channel="sms", address="+15551230000", text=text, **kw)


def tg(text="", **kw):
    return Inbound(channel="telegram", address="12345", text=text, **kw)


def keys(step):
    return [r.key for r in step.replies]


def run(engine, texts, state=None, channel=sms):
    state = state or State()
    steps = []
    for t in texts:
        s = engine.step(state, channel(t))
        steps.append(s)
        state = s.state
    return state, steps


class TestSigning:
    def test_keyword_starts_with_summary_name_request_and_disclosure(self, engine):
        step = engine.step(State(), sms("SCOMM"))
        assert keys(step) == ["campaign_intro", "ask_name", "disclosure"]
        assert step.state.step == AWAITING_NAME and step.state.campaign == "end-scomm"
        assert step.state.language == "en" and step.state.disclosed
        assert step.effects == (Consent("opt_in", "SCOMM", "end-scomm"),)

    def test_spanish_keyword_sets_spanish(self, engine):
        step = engine.step(State(), sms("firma"))
        assert step.state.language == "es"
        assert step.state.step == AWAITING_NAME

    @pytest.mark.parametrize("text", ["SCOMM", "scomm", "  Scomm  ", "SCOMM!", "¡scomm!", "\u200bSCOMM.", '"scomm"'])
    def test_keyword_normalisation(self, engine, text):
        assert engine.step(State(), sms(text)).state.step == AWAITING_NAME

    @pytest.mark.parametrize("text", ["SCOMMS", "S COMM", "scomm now", "sign"])
    def test_not_a_keyword(self, engine, text):
        step = engine.step(State(known=True), sms(text))
        assert keys(step) == ["inbox_ack"] and step.state.step == IDLE
        assert step.effects == (ForStaff(text, False, None),)

    def test_first_contact_without_keyword_offers_both_languages(self, engine, catalog):
        step = engine.step(State(), sms("hola"))
        assert keys(step) == ["inbox_ack", "language_offer"]
        text = render(step.replies, "en", "sms", catalog)
        assert text == ["Thanks! Someone from our team will read your message. To sign End S-Comm Now, text SCOMM. "
                        "Reply HELP for help, STOP to cancel. En español: envia FIRMA."]
        assert step.effects == (ForStaff("hola", False, None),)

    def test_whole_conversation_records_signature(self, engine):
        state, steps = run(engine, ["SCOMM", "Ana María López", "60601"])
        assert keys(steps[1]) == ["ask_zip"] and steps[1].state.pending_name == "Ana María López"
        assert steps[2].effects == (RecordSignature("end-scomm", "Ana María López", "60601", "Chicago", "IL",
                                                    "America/Chicago"),)
        assert keys(steps[2]) == ["signed"]
        assert state.step == IDLE and state.signed == {"end-scomm"}

    def test_zip_plus_four(self, engine):
        _, steps = run(engine, ["SCOMM", "Ana López", "90210-1234"])
        assert steps[-1].effects[0].zip_code == "90210"
        assert steps[-1].effects[0].state == "CA"

    def test_keyword_again_after_signing_says_already_signed(self, engine):
        state, _ = run(engine, ["SCOMM", "Ana López", "60601"])
        step = engine.step(state, sms("scomm"))
        assert keys(step) == ["already_signed"] and not step.effects

    def test_keyword_midway_restarts(self, engine):
        state, _ = run(engine, ["SCOMM", "Ana López"])
        assert state.step == AWAITING_ZIP
        step = engine.step(state, sms("FIRMA"))
        assert step.state.step == AWAITING_NAME and step.state.language == "es"
        assert "disclosure" not in keys(step)  # disclosed once per member


class TestInvalidAnswers:
    @pytest.mark.parametrize("text,error", [
        ("A", "name_too_short"), ("x" * 101, "name_too_long"), ("12345", "name_no_letters"),
        ("!!!", "name_no_letters"), ("R2", "name_too_short"),
    ])
    def test_name_prompts(self, engine, text, error):
        state, _ = run(engine, ["SCOMM"])
        step = engine.step(state, sms(text))
        assert keys(step) == [error]
        assert step.state.step == AWAITING_NAME and step.state.invalid_count == 1
        assert not step.effects

    def test_reserved_words_inside_a_name_are_fine(self, engine):
        state, _ = run(engine, ["SCOMM"])
        step = engine.step(state, sms("help me"))
        assert keys(step) == ["ask_zip"] and step.state.pending_name == "help me"

    def test_keyword_as_answer_restarts_rather_than_being_a_name(self, engine):
        state, _ = run(engine, ["SCOMM"])
        assert engine.step(state, sms("FIRMA")).state.language == "es"
        assert keys(engine.step(state, sms("ENGLISH"))) == ["language_set", "ask_name"]

    def test_zip_errors_are_specific(self, engine):
        state, _ = run(engine, ["SCOMM", "Ana López"])
        assert keys(engine.step(state, sms("606"))) == ["zip_format"]
        assert keys(engine.step(state, sms("Chicago"))) == ["zip_format"]
        assert keys(engine.step(state, sms("00000"))) == ["zip_unknown"]
        assert engine.step(state, sms("00000")).replies[0].params["zip"] == "00000"

    @pytest.mark.parametrize("text", ["Ana López", "ana maría lópez", "José Núñez-Ortiz", "Mary O'Brien",
                                      "  Ana   López  ", "محمد علي"])
    def test_a_name_given_for_the_zip_corrects_the_name(self, engine, text):
        state, _ = run(engine, ["SCOMM", "Ana", "x"])
        step = engine.step(state, sms(text))
        name = " ".join(text.split())
        assert keys(step) == ["name_corrected"] and step.replies[0].params == {"name": name}
        assert step.state.step == AWAITING_ZIP and step.state.pending_name == name
        assert step.state.invalid_count == 0 and not step.effects
        assert engine.step(step.state, sms("60601")).effects[0].name == name

    @pytest.mark.parametrize("text,error", [
        ("Chicago", "zip_format"), ("6060 Main St", "zip_format"), ("Where do I find my ZIP?", "zip_format"),
        ("Apt 4B", "zip_format"), ("00000", "zip_unknown"), ("🙂 🙂", "zip_format"), ("Ana, López", "zip_format"),
    ])
    def test_what_does_not_read_as_a_name_is_a_bad_zip(self, engine, text, error):
        state, _ = run(engine, ["SCOMM", "Ana"])
        step = engine.step(state, sms(text))
        assert keys(step) == [error] and step.state.pending_name == "Ana"

    def test_three_invalid_answers_give_help_to_start_again(self, engine):
        state, steps = run(engine, ["SCOMM", "Ana López", "x", "y", "z"])
        assert keys(steps[-1]) == ["too_many_attempts"]  # not "reply with your ZIP" as well: it is over
        assert steps[-1].replies[0].campaign == "end-scomm"
        assert state.step == IDLE and not state.signed
        assert keys(engine.step(state, sms("60601"))) == ["inbox_ack"]

    def test_three_invalid_names_say_only_that_it_starts_again(self, engine):
        state, steps = run(engine, ["SCOMM", "1", "2", "3"])
        assert keys(steps[-1]) == ["too_many_attempts"] and state.step == IDLE

    def test_valid_answer_resets_the_count(self, engine):
        state, _ = run(engine, ["SCOMM", "1", "2", "Ana López", "x", "y"])
        assert state.step == AWAITING_ZIP and state.invalid_count == 2

    def test_media_without_text_reprompts(self, engine):
        state, _ = run(engine, ["SCOMM"])
        step = engine.step(state, sms("", media=True))
        assert keys(step) == ["not_text", "ask_name"] and step.state == state


class TestConsent:
    @pytest.mark.parametrize("word", ["STOP", "stop", "StopAll", "UNSUBSCRIBE", "cancel", "END", "quit",
                                      "PARAR", "alto", "Cancelar", " stop. "])
    def test_opt_out_words_at_any_point(self, engine, word):
        for before in ([], ["SCOMM"], ["SCOMM", "Ana López"]):
            state, _ = run(engine, before)
            step = engine.step(state, sms(word))
            assert keys(step) == ["opted_out"]
            assert step.state.opted_out and step.state.step == IDLE
            assert step.effects == (Consent("opt_out", word.strip(" .").upper()),)

    def test_opted_out_member_gets_no_answer_to_other_texts(self, engine):
        state, _ = run(engine, ["SCOMM", "STOP"])
        for text in ("hello", "Ana López", "60601"):
            step = engine.step(state, sms(text))
            assert step.replies == () and step.effects == () and step.state == state

    @pytest.mark.parametrize("word", ["START", "unstop", "Yes"])
    def test_opt_in_words(self, engine, word):
        state, _ = run(engine, ["STOP"])
        step = engine.step(state, sms(word))
        assert keys(step) == ["opted_in"] and not step.state.opted_out
        assert step.effects == (Consent("opt_in", word.upper()),)

    def test_keyword_after_stop_opts_back_in(self, engine):
        state, _ = run(engine, ["STOP"])
        step = engine.step(state, sms("SCOMM"))
        assert not step.state.opted_out and step.state.step == AWAITING_NAME
        assert Consent("opt_in", "SCOMM", "end-scomm") in step.effects

    @pytest.mark.parametrize("before,expected", [
        (["SCOMM", "Ana López", "60601", "STOP"], ["already_signed", "opted_in"]),
        (["SCOMM", "STOP"], ["campaign_intro", "ask_name", "opted_in"]),
        (["SCOMM", "Ana López", "STOP"], ["campaign_intro", "ask_name", "opted_in"]),
        (["SCOMM", "please stop texting me"], ["campaign_intro", "ask_name", "opted_in"]),
    ])
    def test_keyword_after_an_opt_out_says_messages_come_again_with_the_disclosure(self, engine, catalog,
                                                                                   before, expected):
        state, _ = run(engine, before)
        assert state.disclosed and state.opted_out
        step = engine.step(state, sms("SCOMM"))
        assert keys(step) == expected and step.replies[-1].join
        assert step.effects == (Consent("opt_in", "SCOMM", "end-scomm"),)
        text = render(step.replies, "en", "sms", catalog)[-1]
        for needed in ("subscribed again", "Presente.org petition alerts", "up to 4 msgs/month",
                       "Msg & data rates may apply", "Reply HELP for help, STOP to cancel"):
            assert needed in text, text

    def test_spanish_keyword_after_parar_carries_the_spanish_disclosure(self, engine, catalog):
        state, _ = run(engine, ["FIRMA", "Ana López", "60601", "PARAR"])
        step = engine.step(state, sms("firma"))
        assert keys(step) == ["already_signed", "opted_in"]
        text = render(step.replies, "es", "sms", catalog)[-1]
        for needed in ("suscribiste de nuevo", "Alertas de peticiones de Presente.org", "hasta 4 msjs/mes",
                       "Pueden aplicar tarifas", "Responde AYUDA para ayuda, PARAR para cancelar"):
            assert needed in text, text

    def test_keyword_of_a_closed_campaign_after_stop_still_says_messages_come_again(self, engine, catalog):
        from dataclasses import replace as dc_replace
        from types import MappingProxyType

        closed = dc_replace(catalog, campaigns=MappingProxyType(
            {"end-scomm": dc_replace(catalog.campaigns["end-scomm"], active=False)}))
        state, _ = run(engine, ["STOP"])
        step = Engine(closed, engine.zips).step(state, sms("SCOMM"))
        assert keys(step) == ["campaign_closed", "opted_in"] and not step.state.opted_out

    def test_start_after_stop_carries_the_disclosure_too(self, engine, catalog):
        state, _ = run(engine, ["SCOMM", "STOP"])
        text = render(engine.step(state, sms("START")).replies, "en", "sms", catalog)[0]
        assert "up to 4 msgs/month" in text and "Msg & data rates may apply" in text

    def test_telegram_start_after_stop_says_messages_come_again(self, engine, catalog):
        state = engine.step(engine.step(State(), tg(command="start")).state, tg(command="stop")).state
        step = engine.step(state, tg(command="start"))
        assert keys(step) == ["campaign_intro", "ask_name", "opted_in"]
        assert "/stop" in render(step.replies, "en", "telegram", catalog)[-1]

    @pytest.mark.parametrize("word", ["SÍ", "si", "Sí!", " SI. "])
    def test_spanish_yes_opts_back_in_after_parar(self, engine, word):
        state, _ = run(engine, ["FIRMA", "PARAR"])
        step = engine.step(state, sms(word))
        assert keys(step) == ["opted_in"] and not step.state.opted_out and step.state.language == "es"
        assert step.effects == (Consent("opt_in", "SI"),)

    @pytest.mark.parametrize("word,lang", [("ESPAÑOL", "es"), ("english", "en")])
    def test_language_switch_after_stop_is_recorded_silently(self, engine, word, lang):
        state, _ = run(engine, ["SCOMM" if lang == "es" else "FIRMA", "STOP"])
        step = engine.step(state, sms(word))
        assert step.replies == () and step.effects == ()
        assert step.state.language == lang and step.state.opted_out
        assert render(engine.step(step.state, sms("HELP")).replies, lang, "sms", engine.catalog)

    def test_language_command_after_stop_is_recorded_silently(self, engine):
        state = engine.step(State(), tg(command="stop")).state
        step = engine.step(state, tg("/language es", command="language", argument="es"))
        assert step.replies == () and step.state.language == "es" and step.state.opted_out

    @pytest.mark.parametrize("word,key", [("AYUDA", "help"), ("ayuda!", "help"), ("PARAR", "opted_out"),
                                          ("Alto", "opted_out"), ("cancelar", "opted_out")])
    def test_a_stranger_who_starts_in_spanish_is_answered_in_spanish(self, engine, word, key):
        step = engine.step(State(), sms(word))
        assert keys(step) == [key] and step.state.language == "es"

    @pytest.mark.parametrize("word", ["HELP", "STOP", "INFO", "CANCEL"])
    def test_a_stranger_who_starts_with_an_english_or_shared_word_stays_in_english(self, engine, word):
        assert engine.step(State(), sms(word)).state.language == "en"

    def test_a_known_member_keeps_their_language_when_they_write_ayuda(self, engine):
        state, _ = run(engine, ["SCOMM"])
        step = engine.step(state, sms("AYUDA"))
        assert keys(step) == ["help"] and step.state.language == "en"

    @pytest.mark.parametrize("word", ["HELP", "info", "Ayuda"])
    def test_help_words_keep_the_conversation(self, engine, word):
        state, _ = run(engine, ["SCOMM", "Ana López"])
        step = engine.step(state, sms(word))
        assert keys(step) == ["help"] and step.state == state
        assert step.effects == (Consent("help", word.upper()),)

    def test_help_answered_even_when_opted_out(self, engine):
        state, _ = run(engine, ["STOP"])
        assert keys(engine.step(state, sms("HELP"))) == ["help"]

    @pytest.mark.parametrize("opt,kind", [("STOP", "opt_out"), ("START", "opt_in"), ("HELP", "help")])
    def test_twilio_opt_out_type_recorded_without_reply(self, engine, opt, kind):
        state, _ = run(engine, ["SCOMM"])
        step = engine.step(state, sms("stop" if opt == "STOP" else opt.lower(), provider_opt=opt))
        assert step.replies == ()
        assert [e.kind for e in step.effects] == [kind]
        assert step.effects[0].cause.startswith(f"OptOutType:{opt}")
        assert step.state.opted_out == (kind == "opt_out")


class TestLanguage:
    @pytest.mark.parametrize("word,lang", [("ESPAÑOL", "es"), ("espanol", "es"), ("Español!", "es"), ("ENGLISH", "en")])
    def test_switch_repeats_pending_question(self, engine, word, lang):
        state, _ = run(engine, ["SCOMM", "Ana López"] if lang == "es" else ["FIRMA", "Ana López"])
        step = engine.step(state, sms(word))
        assert step.state.language == lang
        assert keys(step) == ["language_set", "ask_zip"]
        assert step.state.step == AWAITING_ZIP

    def test_switch_without_conversation_names_keyword(self, engine):
        step = engine.step(State(), sms("español"))
        assert keys(step) == ["language_set", "no_conversation"] and step.state.language == "es"

    def test_telegram_language_hint_sets_first_language(self, engine):
        step = engine.step(State(), tg("/start", command="start", language_hint="es-MX"))
        assert step.state.language == "es"
        assert engine.step(State(known=True), tg("/start", command="start", language_hint="es")).state.language == "en"


class TestTelegramCommands:
    def test_start_with_slug(self, engine):
        step = engine.step(State(), tg(command="start", argument="end-scomm"))
        assert step.state.campaign == "end-scomm" and step.state.step == AWAITING_NAME

    def test_start_with_unknown_slug_uses_default(self, engine):
        step = engine.step(State(), tg(command="start", argument="nope"))
        assert keys(step)[0] == "unknown_campaign" and step.state.campaign == "end-scomm"

    def test_stop_and_help_commands(self, engine):
        assert engine.step(State(), tg(command="stop")).state.opted_out
        assert keys(engine.step(State(), tg(command="help"))) == ["help"]


class TestTables:
    @pytest.mark.parametrize("text,ok", [
        ("Ana", True), ("Ana López", True), ("José Nuñez-Ortiz", True), ("O'Brien", True), ("李小龙", True),
        ("محمد علي", True), ("Jo", True), ("J", False), ("J.", False), ("1234", False), ("R2", False),
        ("  Ana   López  ", True), ("a" * 100, True), ("a" * 101, False), ("STOP", False), ("Help", False),
        ("scomm", False), ("🙂🙂", False),
    ])
    def test_names(self, catalog, text, ok):
        name, error = check_name(text, catalog)
        assert (name is not None) == ok, error
        if ok:
            assert name == " ".join(text.split())

    @pytest.mark.parametrize("text,zip5", [
        ("60601", "60601"), (" 60601 ", "60601"), ("60601-1234", "60601"), ("60601.", "60601"),
        ("6060", None), ("606011", None), ("60601-12", None), ("ABCDE", None), ("00000", None), ("99999", None),
        ("٦٠٦٠١", None),
    ])
    def test_zips(self, zips, text, zip5):
        info, error, _ = check_zip(text, zips)
        assert (info.zip_code if info else None) == zip5


class TestRendering:
    def test_every_text_renders_in_both_languages_and_channels(self, catalog):
        from bots.engine import Reply

        params = {"name": "Ana", "city": "Chicago", "state": "IL", "zip": "60601", "text": "STOP"}
        for lang in catalog.languages:
            for channel in ("sms", "telegram"):
                for key in list(catalog.texts[lang]) + ["campaign_intro"]:
                    if "." in key:
                        continue
                    out = render([Reply(key, params, campaign="end-scomm")], lang, channel, catalog)
                    assert out and all(out), (lang, channel, key)

    def test_sms_is_gsm7_and_spanish_accents_fold(self, engine, catalog):
        from config.gsm import is_gsm7

        state, steps = run(engine, ["FIRMA", "María", "60601"])
        for step in steps:
            for message in render(step.replies, step.state.language, "sms", catalog):
                assert is_gsm7(message), message
        summary = render(steps[0].replies, "es", "sms", catalog)[0]
        assert "policia" in summary and "inmigracion" in summary

    def test_sms_summary_fits_two_segments(self, catalog):
        from config.gsm import segments, to_gsm

        for lang in catalog.languages:
            assert segments(to_gsm(catalog.default_campaign.text(lang).summary)) == ("GSM-7", 2)

    def test_telegram_escapes_names_and_shows_full_statement(self, engine, catalog):
        from bots.engine import Reply

        out = render([Reply("ask_zip", {"name": "<b>Tom & Jerry</b>"})], "en", "telegram", catalog)
        assert "&lt;b&gt;Tom &amp; Jerry&lt;/b&gt;" in out[0]
        intro = render([Reply("campaign_intro", campaign="end-scomm")], "en", "telegram", catalog)[0]
        assert intro.startswith("<b>End S-Comm Now</b>") and "terminate the S-Comm program immediately" in intro

    @pytest.mark.parametrize("texts", [
        ["SCOMM"], ["FIRMA"],
        ["SCOMM", "Ana María López", "60601", "STOP", "SCOMM"], ["FIRMA", "Ana María López", "60601", "PARAR", "FIRMA"],
        ["SCOMM", "STOP", "SCOMM"], ["FIRMA", "PARAR", "FIRMA"], ["STOP", "START"], ["PARAR", "SI"],
    ])
    def test_messages_with_the_disclosure_fit_two_gsm7_segments(self, engine, catalog, texts):
        from config.gsm import segments

        state, steps = run(engine, texts)
        for message in render(steps[-1].replies, state.language, "sms", catalog):
            assert segments(message) in (("GSM-7", 1), ("GSM-7", 2)), message

    def test_disclosure_content(self, engine, catalog):
        step = engine.step(State(), sms("SCOMM"))
        text = " ".join(render(step.replies, "en", "sms", catalog))
        for needed in ("Presente.org", "msgs/month", "Msg & data rates may apply", "Reply HELP for help",
                       "STOP to cancel"):
            assert needed in text


class TestInvisibleCharacters:
    """A name cannot carry characters that change how it looks (bidi overrides and isolates) or hide
    inside it (soft hyphens, zero-width marks): staff read it, the export's formula guard checks it."""

    @pytest.mark.parametrize("text,name", [
        ("\u2066Ana López\u2069", "Ana López"),
        ("\u2067=HYPERLINK(\"x\")\u2069", "=HYPERLINK(\"x\")"),
        ("\u2068Ana\u2069 \u2066López\u2069", "Ana López"),
        ("Ana Ló\u00adpez", "Ana López"),
        ("\u200eAna López\u200f", "Ana López"),
        ("\u202eAna López", "Ana López"),
        ("Ana\u2061 López\u2064", "Ana López"),
        ("\u061cمحمد علي", "محمد علي"),
        ("\ufeffAna López", "Ana López"),
        ("Ana López\U000e0001\U000e0041", "Ana López"),
        ("\ufff9Ana\ufffb López", "Ana López"),
        ("Ana\u200bLópez", "Ana López"),  # a zero-width space is a space
        ("Ana\tLópez\n", "Ana López"),
        ("\u200c=cmd\u200d", "=cmd"),  # a joiner with no letters around it joins nothing
        ("Ana Lópe\u200e\u0301z", "Ana Lópéz"),  # the accent that was kept apart composes once it is gone
    ])
    def test_format_characters_leave_the_name(self, catalog, text, name):
        from bots.engine import clean_name

        assert clean_name(text) == name
        assert check_name(text, catalog) == (name, None)

    def test_joiners_inside_a_word_stay(self):
        """Persian and Indic spellings need the zero-width (non-)joiner between letters."""
        from bots.engine import clean_name

        assert clean_name("مهدی\u200cزاده") == "مهدی\u200cزاده"
        assert clean_name("ന\u0d4d\u200dക") == "ന\u0d4d\u200dക"

    def test_every_format_character_but_the_joiners_is_gone(self):
        import sys
        import unicodedata

        from bots.engine import clean_name

        for cp in range(sys.maxunicode + 1):
            ch = chr(cp)
            if unicodedata.category(ch) == "Cf" and ch not in "\u200c\u200d":
                assert clean_name(f"Ana{ch}Ló{ch}pez") in ("AnaLópez", "Ana Ló pez"), hex(cp)


@pytest.fixture(scope="module")
def two(tmp_path_factory, zips):
    """An engine whose catalog has a second campaign, dream-act (DREAM / SUENO)."""
    from tests.support.campaigns import two_campaigns

    return Engine(two_campaigns(tmp_path_factory.mktemp("two")), zips)


def signed_scomm(**changes):
    """A member who signed end-scomm as Ana López of Chicago (as storage reads them under their lock)."""
    from bots.engine import Signed

    from dataclasses import replace as dc_replace

    last = Signed("end-scomm", "Ana López", "60601", "Chicago", "IL", "America/Chicago")
    return dc_replace(State(known=True, disclosed=True, signed=frozenset({"end-scomm"}), last_signed=last), **changes)


class TestSecondCampaign:
    def test_another_campaigns_keyword_offers_the_name_and_zip_already_given(self, two):
        step = two.step(signed_scomm(), sms("DREAM"))
        assert keys(step) == ["campaign_intro", "offer_signer"]
        assert step.replies[1].params == {"name": "Ana López", "zip": "60601"}
        assert step.state.campaign == "dream-act" and step.state.step == AWAITING_CONFIRM
        assert render(step.replies, "en", "sms", two.catalog)[1] == \
            "Sign as Ana Lopez, 60601? Reply YES, or send your full name."

    def test_in_spanish_the_offer_asks_for_si(self, two):
        step = two.step(signed_scomm(language="es"), sms("SUENO"))
        assert render(step.replies, "es", "sms", two.catalog)[1] == \
            "¿Firmar como Ana Lopez, 60601? Responde SI, o envia tu nombre completo."  # GSM-7 has no Í

    @pytest.mark.parametrize("answer", ["YES", "yes!", "Sí", "si", "SI."])
    def test_yes_signs_with_what_was_recorded(self, two, answer):
        state = two.step(signed_scomm(), sms("DREAM")).state
        step = two.step(state, sms(answer))
        assert step.effects == (RecordSignature("dream-act", "Ana López", "60601", "Chicago", "IL",
                                                "America/Chicago"),)
        assert keys(step) == ["signed"] and step.replies[0].params == {"name": "Ana López", "city": "Chicago",
                                                                       "state": "IL"}
        assert step.state.step == IDLE and step.state.signed == {"end-scomm", "dream-act"}

    def test_yes_signs_when_twilio_advanced_opt_out_took_it_for_an_opt_in(self, two):
        """YES is one of Twilio's own opt-in words: with Advanced Opt-Out it arrives as OptOutType=START.
        The opt-in is recorded without a second confirmation, and the answer to the offer still signs."""
        state = two.step(signed_scomm(), sms("DREAM")).state
        step = two.step(state, sms("Yes", provider_opt="START"))
        assert keys(step) == ["signed"]
        assert [type(e).__name__ for e in step.effects] == ["Consent", "RecordSignature"]
        assert step.effects[0].kind == "opt_in" and step.effects[1].campaign == "dream-act"

    def test_a_name_instead_goes_on_as_usual(self, two):
        state = two.step(signed_scomm(), sms("DREAM")).state
        step = two.step(state, sms("Ana María López"))
        assert keys(step) == ["ask_zip"] and step.state.pending_name == "Ana María López"
        step = two.step(step.state, sms("90210"))
        assert step.effects == (RecordSignature("dream-act", "Ana María López", "90210", "Beverly Hills", "CA",
                                                "America/Los_Angeles"),)

    def test_no_asks_for_the_name(self, two):
        state = two.step(signed_scomm(), sms("DREAM")).state
        step = two.step(state, sms("No"))
        assert keys(step) == ["ask_name"] and step.state.step == AWAITING_NAME

    def test_a_bad_name_instead_gets_the_name_prompt(self, two):
        state = two.step(signed_scomm(), sms("DREAM")).state
        step = two.step(state, sms("12345"))
        assert keys(step) == ["name_no_letters"] and step.state.step == AWAITING_NAME

    def test_stop_still_stops_and_a_language_switch_repeats_the_offer(self, two):
        state = two.step(signed_scomm(), sms("DREAM")).state
        assert two.step(state, sms("STOP")).state.opted_out
        step = two.step(state, sms("ESPAÑOL"))
        assert keys(step) == ["language_set", "offer_signer"] and step.state.step == AWAITING_CONFIRM

    def test_after_an_opt_out_the_offer_comes_with_the_disclosure(self, two):
        step = two.step(signed_scomm(opted_out=True), sms("DREAM"))
        assert keys(step) == ["campaign_intro", "offer_signer", "opted_in"] and not step.state.opted_out
        assert "STOP to cancel" in render(step.replies, "en", "sms", two.catalog)[1]

    def test_no_offer_without_a_usable_signature(self, two):
        from dataclasses import replace as dc_replace

        erased = dc_replace(signed_scomm().last_signed, name="", zip_code="", city="", state="")
        assert keys(two.step(signed_scomm(last_signed=erased), sms("DREAM"))) == ["campaign_intro", "ask_name"]
        assert keys(two.step(State(known=True), sms("DREAM"))) == ["campaign_intro", "ask_name", "disclosure"]

    def test_on_telegram_the_offer_is_the_same(self, two):
        step = two.step(signed_scomm(), tg(command="start", argument="dream-act"))
        assert keys(step) == ["campaign_intro", "offer_signer"]
        assert "Sign as Ana López, 60601?" in render(step.replies, "en", "telegram", two.catalog)[-1]


class TestOwnCampaign:
    """HELP and the "text a keyword" fallback name the member's own campaign, not always the default."""

    def test_help_names_the_campaign_last_signed(self, two):
        from dataclasses import replace as dc_replace

        state = signed_scomm(signed=frozenset({"dream-act"}))
        state = dc_replace(state, last_signed=dc_replace(state.last_signed, campaign="dream-act"))
        for text, key in (("HELP", "help"), ("hello", "inbox_ack")):
            step = two.step(state, sms(text))
            assert keys(step) == [key] and step.replies[0].campaign == "dream-act"
            assert "text DREAM" in render(step.replies, "en", "sms", two.catalog)[0]

    def test_help_mid_conversation_names_the_campaign_under_way(self, two):
        state = two.step(State(), sms("SUENO")).state
        step = two.step(state, sms("AYUDA"))
        assert "envia SUENO" in render(step.replies, "es", "sms", two.catalog)[0]

    def test_a_stranger_is_told_the_default_campaign(self, two):
        step = two.step(State(), sms("hello"))
        assert step.replies[0].campaign == "end-scomm"


class TestOwnWords:
    """What the conversation cannot use is kept for staff, acknowledged at most once a day."""

    def test_a_signer_s_words_are_kept_with_their_campaign_and_acknowledged_once(self, engine, catalog):
        state, _ = run(engine, ["SCOMM", "Ana López", "60601"])
        first = engine.step(state, sms("How else can I help? I can volunteer on Saturdays"))
        assert keys(first) == ["inbox_ack"] and first.state.acked_today
        assert first.effects == (ForStaff("How else can I help? I can volunteer on Saturdays", False, "end-scomm"),)
        second = engine.step(first.state, sms("Also Sundays"))
        assert keys(second) == [] and second.effects == (ForStaff("Also Sundays", False, "end-scomm"),)

    def test_the_acknowledgement_is_in_the_member_s_language(self, engine, catalog):
        state, _ = run(engine, ["FIRMA", "José Pérez", "60601"])
        step = engine.step(state, sms("¿Cómo más puedo ayudar?"))
        assert render(step.replies, state.language, "sms", catalog) == [
            "¡Gracias! Alguien de nuestro equipo leera tu mensaje. Para firmar Fin a S-Comm Ya, envia FIRMA. "
            "Responde AYUDA para ayuda, PARAR para cancelar."]

    @pytest.mark.parametrize("text", ["STOP", "please stop texting me", "no más mensajes", "HELP", "START", "ESPAÑOL",
                                      "SCOMM"])
    def test_reserved_words_and_plain_opt_outs_are_never_kept(self, engine, text):
        step = engine.step(State(known=True), sms(text))
        assert not any(isinstance(e, ForStaff) for e in step.effects)

    def test_an_answer_to_a_pending_question_is_not_kept(self, engine):
        state, _ = run(engine, ["SCOMM"])
        step = engine.step(state, sms("I have a question"))
        assert not any(isinstance(e, ForStaff) for e in step.effects) and step.state.step == AWAITING_ZIP

    def test_nothing_is_kept_from_a_member_opted_out(self, engine):
        state, _ = run(engine, ["SCOMM", "STOP"])
        step = engine.step(state, sms("why did you text me"))
        assert step.replies == () and step.effects == ()

    def test_a_photo_is_kept_with_its_media_flag(self, engine):
        step = engine.step(State(known=True), sms("", media=True))
        assert step.effects == (ForStaff("", True, None),) and keys(step) == ["inbox_ack"]
