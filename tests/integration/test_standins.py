"""The stand-ins answer the real client libraries the way the providers do."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.standins import (
    TELEGRAM_BLOCKED, TWILIO_UNSUBSCRIBED, TelegramStandIn, TwilioStandIn, telegram_too_many,
)


def test_twilio_client_sends_through_standin():
    from twilio.base.exceptions import TwilioRestException
    from twilio.rest import Client

    with TwilioStandIn() as standin:
        client = Client("AC" + "0" * 32, "token")
        client.api.base_url = standin.url
        msg = client.messages.create(to="+13125550101", messaging_service_sid="MG" + "1" * 32, body="hola")
        assert msg.sid.startswith("SM") and msg.status == "queued"
        standin.fail("+13125550102", TWILIO_UNSUBSCRIBED)
        with pytest.raises(TwilioRestException) as exc:
            client.messages.create(to="+13125550102", messaging_service_sid="MG" + "1" * 32, body="hola")
        assert exc.value.code == 21610
        assert [m["To"] for m in standin.messages] == ["+13125550101", "+13125550102"]


def test_telegram_bot_sends_through_standin():
    from telegram import Bot
    from telegram.error import Forbidden, RetryAfter

    with TelegramStandIn() as standin:
        async def go():
            bot = Bot(standin.token, base_url=f"{standin.url}/bot")
            async with bot:
                sent = await bot.send_message(chat_id=42, text="<b>hi</b>", parse_mode="HTML")
                assert sent.text == "<b>hi</b>"
                standin.fail(43, TELEGRAM_BLOCKED)
                with pytest.raises(Forbidden):
                    await bot.send_message(chat_id=43, text="x")
                standin.fail(44, telegram_too_many(3))
                with pytest.raises(RetryAfter) as exc:
                    await bot.send_message(chat_id=44, text="x")
                assert exc.value.retry_after in (3, __import__("datetime").timedelta(seconds=3))

        asyncio.run(go())
        assert [str(c["chat_id"]) for c in standin.sent] == ["42", "43", "44"]


def test_a_request_counts_from_when_it_reached_the_machine_not_when_the_standin_got_to_it():
    """Rate tests count requests at the kernel's receive time (Recorded.arrived): a stand-in thread
    that gets to a request late, as on a starved machine, must not move it."""
    import socket
    import time

    from tests.support import standins

    with socket.create_server(("127.0.0.1", 0)) as server:
        standins._kernel_timestamps(server)
        client = socket.create_connection(server.getsockname())
        conn, _ = server.accept()
        with client, conn:
            standins._kernel_timestamps(conn)
            client.sendall(b"x")  # the kernel switches its timestamps on shortly after they are first asked for
            time.sleep(0.05)
            assert conn.recv(1) == b"x"
            sent = time.time()
            client.sendall(b"POST / HTTP/1.1\r\n\r\n")
            time.sleep(0.3)  # the stand-in's thread is busy elsewhere
            arrived = standins._arrival(conn)
            assert arrived is not None and abs(arrived - sent) < 0.1, (arrived, sent)
            assert conn.recv(100).startswith(b"POST /")  # only looked at: the handler still reads it all


def test_twilio_standin_takes_whatsapp_and_content_api_sends_as_twilio_does():
    from twilio.base.exceptions import TwilioRestException
    from twilio.rest import Client

    with TwilioStandIn() as standin:
        client = Client("AC" + "0" * 32, "token")
        client.api.base_url = standin.url
        wa = "whatsapp:+13125550101"
        assert client.messages.create(to=wa, from_="whatsapp:+14155238886", body="¡hola!").sid.startswith("SM")
        sent = client.messages.create(to=wa, from_="whatsapp:+14155238886", content_sid="HX" + "0a" * 16,
                                      content_variables='{"1": "Ana"}')
        assert sent.status == "queued"
        for bad, code in (({"content_sid": "HX-not-a-sid"}, 21656),  # an invalid Content SID
                          ({"content_sid": "HX" + "0a" * 16, "content_variables": "[1]"}, 21658),
                          ({"body": "hi", "from_": "+14155238886"}, 63007)):  # an SMS sender to a WhatsApp address
            kwargs = {"from_": "whatsapp:+14155238886", **bad}
            with pytest.raises(TwilioRestException) as exc:
                client.messages.create(to=wa, **kwargs)
            assert exc.value.code == code
        assert standin.messages[1]["ContentSid"] == "HX" + "0a" * 16
        assert standin.messages[1]["ContentVariables"] == '{"1": "Ana"}'
