"""A Twilio Messages.json stand-in on asyncio (aiohttp.web) for the benchmark: the same answers as
tests/support/standins.TwilioStandIn, but thousands of requests a second with a fixed latency, so the
benchmark measures firma and not a thread-per-connection test server."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid

from aiohttp import web


def serve(latency: float, q) -> None:
    """Run in its own process: put the base URL on ``q`` and serve until terminated."""

    async def messages(request: web.Request) -> web.Response:
        form = await request.post()
        await asyncio.sleep(latency)
        account = request.match_info["account"]
        if not form.get("To") or not form.get("Body"):
            return web.json_response({"code": 21602, "message": "Message body is required.", "status": 400},
                                     status=400)
        sid = "SM" + uuid.uuid4().hex
        return web.json_response({
            "sid": sid, "account_sid": account, "to": form.get("To"), "from": form.get("From"),
            "messaging_service_sid": form.get("MessagingServiceSid"), "body": form.get("Body"),
            "status": "queued", "num_segments": "1", "direction": "outbound-api", "api_version": "2010-04-01",
            "uri": f"/2010-04-01/Accounts/{account}/Messages/{sid}.json",
            "date_created": time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime()),
        }, status=201)

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{account}/Messages.json", messages)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        site = web.SockSite(runner, sock, backlog=4096)
        await site.start()
        q.put(f"http://127.0.0.1:{sock.getsockname()[1]}")
        await asyncio.Event().wait()

    asyncio.run(main())
