"""``xned serve``: HTTP API, web page (``xned.serve.app``) and the process that runs them."""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import asdict
from typing import TYPE_CHECKING

from xned.errors import InputError

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from xned.runner import LinkOptions
    from xned.serve.app import Limits

CONFIG_ENV = "XNED_SERVE_CONFIG"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """A server reachable from other machines must have a token."""
    if not is_loopback(host) and not token:
        raise InputError(
            f"--host {host} is reachable from other machines: set a token with --token or $XNED_TOKEN "
            f"(clients then send Authorization: Bearer <token>), or bind to 127.0.0.1."
        )


def app_from_env() -> Starlette:
    """The app of one server process, configured by ``$XNED_SERVE_CONFIG`` (how ``xned serve
    --workers N`` hands its options to each uvicorn worker process)."""
    from xned.runner import LinkOptions
    from xned.serve.app import Limits, create_app

    cfg = json.loads(os.environ[CONFIG_ENV])
    link = dict(cfg.get("link") or {})
    if link.get("providers") is not None:
        link["providers"] = tuple(link["providers"])
    return create_app(LinkOptions(**link).load(), token=cfg.get("token"), limits=Limits(**cfg.get("limits", {})))


def serve(
    options: LinkOptions,
    *,
    host: str,
    port: int,
    workers: int,
    token: str | None,
    limits: Limits,
    log_level: str = "info",
) -> None:
    """Run the server: ``workers`` processes, each with the bundle of ``options`` loaded once."""
    import uvicorn

    check_bind(host, token)
    os.environ[CONFIG_ENV] = json.dumps({"link": options.as_dict(), "token": token, "limits": asdict(limits)})
    if workers == 1:  # load the bundle here, so a bad bundle is an error before listening
        uvicorn.run(app_from_env(), host=host, port=port, log_level=log_level)
    else:
        uvicorn.run("xned.serve:app_from_env", factory=True, host=host, port=port, workers=workers, log_level=log_level)
