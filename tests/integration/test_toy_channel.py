"""A new channel is one module: this test's toy channel, registered, signs a member end to end
through the service and receives a broadcast through the worker, with nothing else changed.

Everything the toy channel is lives in this module (its class and its sender); the registry is
the only place it is announced.
"""

from __future__ import annotations

from typing import Sequence

import pytest

from bots import broadcast_plan as plan
from bots import broadcasts, channels, service
from bots.worker import Options, run_worker
from bots.channels.base import Simulated
from bots.engine import Inbound, Reply
from bots.render import compose
from bots.runtime import utcnow
from config.campaigns import Catalog
from tests.support import broadcasts as h


class ToySender:
    """Records what it is asked to send; every message is accepted."""

    channel = "toy"
    sent: list[tuple[str, str]] = []

    def __init__(self, settings=None, concurrency: int = 10):
        pass

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        return None

    async def send(self, to: str, body: str) -> plan.SendResult:
        ToySender.sent.append((to, body))
        return plan.SendResult(plan.SENT, provider_id=f"toy-{len(ToySender.sent)}")


class Toy:
    """A channel whose members have numeric handles and whose replies are plain text, one per line."""

    name = "toy"
    label = "Toy"
    text_variant = None
    language_hint = False
    commands = False
    phone_numbers = False
    quiet_hours = False
    provider_ids_unique = False
    segmented = False
    status_callbacks = False
    rate_variable = "FIRMA_TOY_RATE"

    def rate(self, settings) -> float:
        return 500.0

    def sender(self, settings, concurrency: int = 10) -> ToySender:
        return ToySender(settings, concurrency)

    def parse_address(self, text: str) -> str | None:
        text = (text or "").strip()
        return f"toy-{text}" if text.isdigit() else None

    def display_address(self, address: str) -> str:
        return address

    def render(self, replies: Sequence[Reply], language: str, catalog: Catalog) -> list[str]:
        return compose(replies, language, catalog, variant=None, full_intro=True, separator="\n")

    def broadcast_text(self, template: str, name: str, stop_notice: str | None) -> str:
        return plan.with_stop_notice(template, name, stop_notice)

    def check_broadcast(self, template: str, language: str, stop_notice: str | None) -> plan.TextCheck:
        sample = self.broadcast_text(template, plan.SAMPLE_NAME, stop_notice)
        return plan.TextCheck(language, self.name, sample, "text", 1, len(sample))

    def signup(self, settings, catalog: Catalog, campaign, language: str):
        return None  # nothing to print on a poster

    def simulate(self, address: str, text: str, language: str | None, button: str | None) -> Inbound:
        return Inbound(channel=self.name, address=address, text=text, simulated=True)

    def simulated_reply(self, inbound: Inbound, outcome, catalog: Catalog, from_button: bool = False) -> Simulated:
        return Simulated(outcome.messages, outcome.language)


@pytest.fixture
def toy():
    ToySender.sent = []
    channels.register(Toy())
    yield channels.get("toy")
    channels.unregister("toy")


def test_a_registered_toy_channel_signs_and_receives_a_broadcast(rt, toy):
    assert isinstance(toy, channels.Channel)
    assert "toy" in channels.names() and channels.label("toy") == "Toy"
    assert ("toy", "toy-7") in channels.contact_candidates("7")

    def say(text: str, n: int) -> list[str]:
        inbound = Inbound(channel="toy", address="toy-7", text=text, provider_id=f"toy-in-{n}")
        return service.handle_inbound(rt.db.uow(), inbound, rt.engine, rt.now()).messages

    intro = say("FIRMA", 1)
    assert intro[0].startswith("Fin a S-Comm Ya") and "nombre completo" in intro[1]  # full intro, Spanish
    assert say("Ana María López", 2)
    done = say("60601", 3)
    assert "Ana María López" in done[0] and "Chicago" in done[0]  # accents kept: no GSM-7 folding here

    rt.settings = h.settings_for(rt)
    rt.clock = utcnow
    req = broadcasts.BroadcastRequest("end-scomm", "Hi {first_name}!", "¡Hola {first_name}!", channel="toy")
    assert broadcasts.preview(rt, req).recipients == {"toy": 1}
    created = broadcasts.create_broadcast(rt, req)
    stats = run_worker(rt, Options(drain=True, poll=0.05), senders={"toy": toy.sender(rt.settings)})
    assert stats["sent"] == 1
    assert ToySender.sent == [("toy-7", "¡Hola Ana! Responde STOP para no recibir más mensajes.")]
    assert h.status_of(rt, created.id) == {"sent": 1}
