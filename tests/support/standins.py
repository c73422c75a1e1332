"""Local stand-ins for the providers: small HTTP servers on 127.0.0.1 that speak the Twilio REST API
and the Telegram Bot API formats, so the real twilio and python-telegram-bot clients run end to end
(point TWILIO_API_URL / TELEGRAM_API_URL at ``standin.url``).

Each records every request it gets and can be told, per recipient, to fail the way the provider does
(Twilio 21610, Telegram 403 and 429), and to take a fixed time per request (latency).
"""

from __future__ import annotations

import abc
import contextlib
import json
import re
import socket
import struct
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlparse


@dataclass
class Recorded:
    method: str
    path: str
    form: dict[str, list[str]]
    json: Any
    at: float  # time.monotonic() when the stand-in handled it
    # When the request reached this machine: the kernel's receive time of its first bytes (wall clock),
    # or, where the kernel gives none, time.time() when it was handled. A provider counts requests as
    # they arrive; on a starved test machine the stand-in's threads can be 150 ms late handling them,
    # and those requests would look bunched.
    arrived: float = 0.0


# Linux: SO_TIMESTAMPNS (the same number as its control message), not in Python's socket module.
_SO_TIMESTAMPNS = 35


def _kernel_timestamps(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)


def _arrival(sock: socket.socket) -> float | None:
    """Wait for the next request's first bytes, without reading them, and return the kernel's receive
    time of them (None where there is none). The clients here send a request only once the previous
    one is answered (no pipelining), so nothing of it waits in the handler's buffer meanwhile."""
    try:
        data, ancillary, _, _ = sock.recvmsg(1, socket.CMSG_SPACE(16), socket.MSG_PEEK)
    except OSError:
        return None
    for level, kind, payload in ancillary:
        if data and level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(payload) >= 16:
            seconds, nanoseconds = struct.unpack("qq", payload[:16])
            return seconds + nanoseconds / 1e9
    return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def server_bind(self):
        super().server_bind()
        _kernel_timestamps(self.socket)  # switches the kernel's receive timestamps on from the start

    def get_request(self):
        conn, addr = super().get_request()
        _kernel_timestamps(conn)
        return conn, addr


class StandIn(abc.ABC):
    """Base: a threaded HTTP server on 127.0.0.1 with a free port; use as a context manager."""

    def __init__(self, latency: float = 0.0):
        self.latency = latency
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        handler = self._handler_class()
        self._server = _Server(("127.0.0.1", 0), handler)
        # shutdown() waits for serve_forever to look again: every 10 ms, not the default half second
        # that every test using a stand-in would otherwise spend stopping it
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01},
                                        daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "StandIn":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def record(self, rec: Recorded) -> None:
        with self._lock:
            self.requests.append(rec)

    @abc.abstractmethod
    def handle(self, method: str, path: str, form: dict, body: Any) -> tuple[int, dict, dict]:
        """(status, JSON payload, headers) in the provider's format."""

    def _handler_class(self):
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def handle_one_request(self):
                self._arrived = _arrival(self.connection)
                super().handle_one_request()

            def _serve(self, method: str):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                ctype = self.headers.get("Content-Type", "")
                form, body = {}, None
                if "application/json" in ctype and raw:
                    body = json.loads(raw)
                elif raw:
                    form = parse_qs(raw.decode("utf-8"), keep_blank_values=True)
                parsed = urlparse(self.path)
                if parsed.query:
                    for k, v in parse_qs(parsed.query, keep_blank_values=True).items():
                        form.setdefault(k, v)
                standin.record(Recorded(method, parsed.path, form, body, time.monotonic(),
                                        self._arrived or time.time()))
                if standin.latency:
                    time.sleep(standin.latency)
                status, payload, headers = standin.handle(method, parsed.path, form, body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                self._serve("POST")

            def do_GET(self):
                self._serve("GET")

        return Handler


@dataclass
class TwilioFailure:
    status: int
    code: int
    message: str


TWILIO_UNSUBSCRIBED = TwilioFailure(400, 21610, "Attempt to send to unsubscribed recipient")
TWILIO_SERVER_ERROR = TwilioFailure(500, 20500, "Internal Server Error")
# WhatsApp's own refusals, as Twilio answers them (https://www.twilio.com/docs/errors/<code>)
WHATSAPP_OUTSIDE_WINDOW = TwilioFailure(400, 63016, "Failed to send freeform message because you are outside the "
                                                    "allowed window. If you are using WhatsApp, please use a Message "
                                                    "Template.")
WHATSAPP_NOT_ON_WHATSAPP = TwilioFailure(400, 63003, "Channel could not find To address")
WHATSAPP_INVALID_RECIPIENT = TwilioFailure(400, 63024, "Invalid message recipient")
WHATSAPP_RATE_LIMITED = TwilioFailure(429, 63018, "Rate limit exceeded for Channel")


class TwilioStandIn(StandIn):
    """POST /2010-04-01/Accounts/{AccountSid}/Messages.json -> 201 with a Message resource."""

    def __init__(self, latency: float = 0.0):
        super().__init__(latency)
        self.failures: dict[str, TwilioFailure | list[TwilioFailure]] = {}  # To -> failure(s), consumed in order
        # Called with (sid, form) before a created message is answered, as Twilio may call back about a
        # message before its answer to the send has reached the sender.
        self.before_answer: Callable[[str, dict[str, str]], None] | None = None
        self.reject_credentials = False  # answer every call as Twilio does a wrong SID or auth token

    def fail(self, to: str, *failures: TwilioFailure | None) -> None:
        """Answer messages to ``to`` with these failures in turn (the last one repeats; None = success)."""
        self.failures[to] = list(failures)

    @property
    def messages(self) -> list[dict[str, str]]:
        return [{k: v[0] for k, v in r.form.items()} for r in self.requests
                if r.method == "POST" and r.path.endswith("/Messages.json")]

    def handle(self, method, path, form, body):
        parts = path.strip("/").split("/")
        if method != "POST" or len(parts) != 4 or parts[:2] != ["2010-04-01", "Accounts"] or parts[3] != "Messages.json":
            return 404, {"code": 20404, "message": "The requested resource was not found", "status": 404}, {}
        account = parts[2]
        if self.reject_credentials:
            return 401, {"code": 20003, "message": "Authenticate", "status": 401,
                         "more_info": "https://www.twilio.com/docs/errors/20003"}, {}
        f = {k: v[0] for k, v in form.items()}
        to = f.get("To", "")
        if not to or not (f.get("Body") or f.get("MediaUrl") or f.get("ContentSid")):
            return 400, {"code": 21602, "message": "Message body is required.", "status": 400}, {}
        if not (f.get("From") or f.get("MessagingServiceSid")):
            return 400, {"code": 21603, "message": "A 'From' phone number is required.", "status": 400}, {}
        if f.get("ContentSid"):  # the Content API: an approved template and its variables
            if not re.fullmatch(r"HX[0-9a-f]{32}", f["ContentSid"]):
                return 400, {"code": 21656, "message": "The ContentSid is Invalid.", "status": 400}, {}
            try:
                variables = json.loads(f.get("ContentVariables") or "{}")
            except ValueError:
                variables = None
            if not isinstance(variables, dict):
                return 400, {"code": 21658, "message": "The ContentVariables Parameter is invalid.",
                             "status": 400}, {}
        if to.startswith("whatsapp:") and f.get("From") and not f["From"].startswith("whatsapp:"):
            return 400, {"code": 63007, "message": "Twilio could not find a Channel with the specified From address",
                         "status": 400}, {}
        pending = self.failures.get(to)
        failure = None
        if isinstance(pending, list) and pending:
            failure = pending.pop(0) if len(pending) > 1 else pending[0]
        elif isinstance(pending, TwilioFailure):
            failure = pending
        if failure:
            return failure.status, {"code": failure.code, "message": failure.message, "status": failure.status,
                                    "more_info": f"https://www.twilio.com/docs/errors/{failure.code}"}, {}
        sid = "SM" + uuid.uuid4().hex
        if self.before_answer is not None:
            self.before_answer(sid, f)
        return 201, {
            "sid": sid, "account_sid": account, "to": to, "from": f.get("From"),
            "messaging_service_sid": f.get("MessagingServiceSid"), "body": f.get("Body"), "status": "queued",
            "num_segments": "1", "direction": "outbound-api", "api_version": "2010-04-01", "price": None,
            "error_code": None, "error_message": None, "uri": f"/2010-04-01/Accounts/{account}/Messages/{sid}.json",
            "date_created": time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime()),
            "date_updated": None, "date_sent": None, "num_media": "0", "price_unit": "USD", "subresource_uris": {},
        }, {}


@dataclass
class TelegramFailure:
    status: int
    description: str
    retry_after: int | None = None
    delay: float = 0.0  # seconds before answering (status 200: a slow success, which a client may time out on)


def telegram_slow(seconds: float) -> TelegramFailure:
    """The call succeeds (the message is sent) but the answer comes after ``seconds``."""
    return TelegramFailure(200, "OK (slow)", delay=seconds)


TELEGRAM_BLOCKED = TelegramFailure(403, "Forbidden: bot was blocked by the user")
TELEGRAM_DEACTIVATED = TelegramFailure(403, "Forbidden: user is deactivated")


def telegram_too_many(retry_after: int = 1) -> TelegramFailure:
    return TelegramFailure(429, f"Too Many Requests: retry after {retry_after}", retry_after)


@dataclass
class TelegramStandIn(StandIn):
    """POST/GET {url}/bot{token}/{method}: getMe, sendMessage, setWebhook, deleteWebhook,
    getWebhookInfo, getUpdates, answerCallbackQuery, setMyCommands, editMessageReplyMarkup."""

    token: str = "123456:TEST-token"
    username: str = "firma_test_bot"
    latency: float = 0.0
    failures: dict[str, list[TelegramFailure]] = field(default_factory=dict)
    updates: list[dict] = field(default_factory=list)  # served by getUpdates
    webhook: dict = field(default_factory=dict)
    on_method: Callable[[str, dict], None] | None = None

    def __post_init__(self):
        StandIn.__init__(self, self.latency)
        self._message_id = 0

    def fail(self, chat_id: int | str, *failures: TelegramFailure | None) -> None:
        """Failures for this chat, consumed in order; the last one stays. ``None`` is one success."""
        self.failures[str(chat_id)] = list(failures)

    def calls(self, method: str) -> list[dict]:
        out = []
        for r in self.requests:
            if r.path.endswith("/" + method):
                out.append(r.json if r.json is not None else {k: v[0] for k, v in r.form.items()})
        return out

    @property
    def sent(self) -> list[dict]:
        return self.calls("sendMessage")

    def _ok(self, result):
        return 200, {"ok": True, "result": result}, {}

    def handle(self, method, path, form, body):
        params = dict(body or {}) if body is not None else {k: v[0] for k, v in form.items()}
        parts = path.strip("/").split("/")
        if len(parts) != 2 or parts[0] != f"bot{self.token}":
            return 404, {"ok": False, "error_code": 404, "description": "Not Found"}, {}
        api = parts[1]
        if self.on_method:
            self.on_method(api, params)
        me = {"id": int(self.token.split(":")[0]), "is_bot": True, "first_name": "Firma",
              "username": self.username, "can_join_groups": True, "can_read_all_group_messages": False,
              "supports_inline_queries": False}
        if api == "getMe":
            return self._ok(me)
        if api in ("sendMessage", "editMessageReplyMarkup", "editMessageText"):
            chat_id = str(params.get("chat_id"))
            pending = self.failures.get(chat_id)
            failure = (pending.pop(0) if len(pending) > 1 else pending[0]) if pending else None
            if failure is not None and failure.delay:
                time.sleep(failure.delay)
            if failure is not None and failure.status == 200:
                failure = None
            if failure is not None:
                payload = {"ok": False, "error_code": failure.status, "description": failure.description}
                if failure.retry_after is not None:
                    payload["parameters"] = {"retry_after": failure.retry_after}
                return failure.status, payload, {}
            if not params.get("text") and api == "sendMessage":
                return 400, {"ok": False, "error_code": 400, "description": "Bad Request: message text is empty"}, {}
            if len(str(params.get("text", ""))) > 4096:
                return 400, {"ok": False, "error_code": 400, "description": "Bad Request: message is too long"}, {}
            with self._lock:
                self._message_id += 1
                mid = self._message_id
            return self._ok({"message_id": mid, "date": int(time.time()), "from": me,
                             "chat": {"id": int(chat_id) if chat_id.lstrip("-").isdigit() else chat_id, "type": "private"},
                             "text": params.get("text", "")})
        if api == "setWebhook":
            self.webhook = dict(params)
            return self._ok(True)
        if api == "deleteWebhook":
            self.webhook = {}
            return self._ok(True)
        if api == "getWebhookInfo":
            return self._ok({"url": self.webhook.get("url", ""), "has_custom_certificate": False,
                             "pending_update_count": len(self.updates)})
        if api == "getUpdates":
            offset = int(params.get("offset") or 0)
            with self._lock:
                self.updates = [u for u in self.updates if u["update_id"] >= offset]
                batch = list(self.updates[: int(params.get("limit") or 100)])
            if not batch and params.get("timeout"):
                time.sleep(min(float(params.get("timeout") or 0), 0.2))
            return self._ok(batch)
        if api in ("answerCallbackQuery", "setMyCommands", "deleteMyCommands", "leaveChat"):
            return self._ok(True)
        return 404, {"ok": False, "error_code": 404, "description": "Not Found: method not found"}, {}
