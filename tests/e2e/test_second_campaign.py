"""A member who signed one campaign and texts another's keyword is offered the name and ZIP already
given; HELP and the fallback name the member's own campaign. Signed Twilio webhooks and Telegram
updates in, rows in the database (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from storage import repository as repo
from storage.models import Signature
from tests.support import telegram_updates as tu
from tests.support.campaigns import two_campaigns
from tests.support.telegram_fixtures import settings, standin  # noqa: F401 - fixtures
from tests.support.twilio_client import messages, post_sms

PHONE = "+13125550101"
ANA = 111_222_333


@pytest.fixture
def catalog(tmp_path):
    return two_campaigns(tmp_path)


def texts(client, *bodies, phone=PHONE):
    return [messages(post_sms(client, phone, body)) for body in bodies]


def signatures(rt):
    with rt.db.uow() as uow:
        return [(s.campaign, s.name, s.zip_code, s.city, s.state, s.timezone, s.language)
                for s in uow.session.scalars(select(Signature).order_by(Signature.id))]


@pytest.mark.parametrize("first,second,yes,offer,done", [
    ("SCOMM", "DREAM", "YES", "Sign as Ana Maria Lopez, 60601? Reply YES, or send your full name.",
     "Ana Maria Lopez of Chicago, IL has signed \"Pass the Dream Act\""),
    ("FIRMA", "SUENO", "Sí", "¿Firmar como Ana Maria Lopez, 60601? Responde SI, o envia tu nombre completo.",
     "Ana Maria Lopez de Chicago, IL firmo \"Aprueben el Dream Act\""),
])
def test_a_second_campaign_offers_the_name_and_zip_already_given(client, rt, first, second, yes, offer, done):
    texts(client, first, "Ana María López", "60601")
    intro, question = texts(client, second)[0]
    assert "Dream Act" in intro and question == offer
    (signed,) = texts(client, yes)
    assert done in signed[0]
    lang = "en" if first == "SCOMM" else "es"
    assert signatures(rt) == [("end-scomm", "Ana María López", "60601", "Chicago", "IL", "America/Chicago", lang),
                              ("dream-act", "Ana María López", "60601", "Chicago", "IL", "America/Chicago", lang)]
    assert client.get("/api/campaigns/dream-act").get_json()["signatures"] == 1


def test_another_name_instead_of_yes_goes_on_as_usual(client, rt):
    texts(client, "SCOMM", "Ana María López", "60601")
    texts(client, "DREAM")
    (ask_zip,) = texts(client, "Rosa Elena Vargas")
    assert ask_zip == ["Thanks, Rosa Elena Vargas. Now reply with your 5-digit ZIP code."]
    texts(client, "90210")
    assert signatures(rt)[-1][:5] == ("dream-act", "Rosa Elena Vargas", "90210", "Beverly Hills", "CA")


def test_help_and_the_fallback_name_the_members_own_campaign(client, rt):
    texts(client, "DREAM", "Ana María López", "60601")
    (help_,) = texts(client, "HELP")
    assert "To sign, text DREAM" in help_[0]
    (fallback,) = texts(client, "hello there")
    assert fallback == ["Thanks! Someone from our team will read your message. To sign Pass the Dream Act, text DREAM. "
                        "Reply HELP for help, STOP to cancel."]
    (stranger,) = texts(client, "hello there", phone="+13125550199")
    assert "text SCOMM" in stranger[0]


def test_on_telegram_a_linked_persons_signature_is_offered(client, rt, standin):
    """The Telegram chat that shared the number of an SMS member who signed is one person with them."""
    texts(client, "SCOMM", "Ana María López", "60601")
    tu.post_update(client, tu.text_update(ANA, "/start end-scomm"))
    tu.post_update(client, tu.contact_update(ANA, PHONE))
    with rt.db.uow() as uow:
        assert repo.find_member(uow.session, "telegram", str(ANA)).person_id is not None
    before = len(standin.sent)
    r = tu.post_update(client, tu.text_update(ANA, "/start dream-act"))
    sent = [m["text"] for m in standin.sent[before:]] or [r.get_json()["text"]]
    assert sent[-1] == "Sign as Ana María López, 60601? Send YES, or send your full name."
    r = tu.post_update(client, tu.text_update(ANA, "yes"))
    assert "has signed" in (r.get_json() or {}).get("text", "") or "has signed" in standin.sent[-1]["text"]
    assert [s[:2] for s in signatures(rt)] == [("end-scomm", "Ana María López"), ("dream-act", "Ana María López")]
    with rt.db.uow() as uow:
        assert uow.session.scalars(select(Signature.channel).where(Signature.campaign == "dream-act")).one() == \
            "telegram"


def test_yes_signs_with_twilio_advanced_opt_out_on(client, rt):
    """Twilio takes YES for one of its opt-in words (OptOutType=START) and confirms that itself; the
    offer is answered all the same."""
    texts(client, "SCOMM", "Ana María López", "60601")
    texts(client, "DREAM")
    (signed,) = [messages(post_sms(client, PHONE, "YES", OptOutType="START"))]
    assert len(signed) == 1 and "has signed \"Pass the Dream Act\"" in signed[0]
    assert [s[0] for s in signatures(rt)] == ["end-scomm", "dream-act"]
