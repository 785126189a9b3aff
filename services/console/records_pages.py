"""Admin records: the audit log, webhooks (with their deliveries) and API keys."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from services.api.deps import DB
from services.api.routes.checks import ApiKeyIn, ApiKeyOut
from services.api.routes.events import CloudEvent
from services.api.routes.webhooks import DeliveryOut, WebhookOut
from services.api.schemas import MAX_ID, WebhookIn
from services.api.types import Id
from services.console import web
from services.console.recent_factor import recently_verified
from services.events import audit
from services.events.catalog import EventType
from services.host_checks import api_keys
from services.webhooks import service as webhooks

router = APIRouter(prefix="/admin", include_in_schema=False)
EVENT_TYPES = [t.value for t in EventType]
PAGE_SIZE = 50


@router.get("/audit-log")
def audit_log(request: Request, caller: web.AdminCaller, session: DB,
              type: Annotated[str, Query(max_length=64)] = "",
              before: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None) -> Response:
    chosen = type if type in EVENT_TYPES else ""
    events, next_seq = audit.newest_first(session, caller.workspace, chosen or None, before,
                                          PAGE_SIZE)
    items = [CloudEvent.of(e, caller.workspace.slug).model_dump(mode="json") for e in events]
    return web.render(request, "audit_log.html", {
        "title": "Audit log", "items": items, "next_seq": next_seq, "types": EVENT_TYPES,
        "chosen": chosen, "before": before}, caller=caller)


@router.get("/webhooks")
def webhooks_page(request: Request, caller: web.AdminCaller, session: DB) -> Response:
    return _webhooks(request, caller, session)


@router.post("/webhooks", dependencies=[recently_verified("/admin/webhooks")])
def webhook_add(request: Request, form: web.Form, caller: web.AdminCaller, session: DB) -> Response:
    types = ["*"] if form.get("all_types") == "on" else [t for t in EVENT_TYPES if form.get(t)]
    if not types:
        return _webhooks(request, caller, session, url=form.get("url", ""),
                         error="Choose at least one event type, or All events.")
    with web.form_errors(session) as problem:
        body = WebhookIn.model_validate({"url": form.get("url", ""), "event_types": types})
        endpoint, secret = webhooks.create(session, caller.workspace, body.url, body.event_types,
                                           actor_id=caller.teammate.id)
        return _webhooks(request, caller, session, created=(endpoint.url, secret))
    return _webhooks(request, caller, session, error=problem.message, url=form.get("url", ""))


@router.post("/webhooks/{endpoint_id}/delete")
def webhook_delete(request: Request, endpoint_id: Id, form: web.Form, caller: web.AdminCaller,
                   session: DB) -> Response:
    with web.form_errors(session) as problem:
        webhooks.delete(session, caller.workspace, endpoint_id, actor_id=caller.teammate.id)
        return web.redirect("/admin/webhooks")
    return _webhooks(request, caller, session, error=problem.message)


@router.get("/webhooks/{endpoint_id}")
def deliveries_page(request: Request, endpoint_id: Id, caller: web.AdminCaller, session: DB,
                    redelivered: str = "") -> Response:
    return _deliveries(request, caller, session, endpoint_id,
                       notice="Queued to be sent again." if redelivered else None)


@router.post("/webhooks/{endpoint_id}/deliveries/{delivery_id}/redeliver")
def redeliver(request: Request, endpoint_id: Id, delivery_id: Id, form: web.Form,
              caller: web.AdminCaller, session: DB) -> Response:
    with web.form_errors(session) as problem:
        webhooks.redeliver(session, caller.workspace, endpoint_id, delivery_id)
        return web.redirect(f"/admin/webhooks/{endpoint_id}?redelivered=1")
    return _deliveries(request, caller, session, endpoint_id, error=problem.message)


@router.get("/api-keys")
def api_keys_page(request: Request, caller: web.AdminCaller, session: DB) -> Response:
    return _api_keys(request, caller, session)


@router.post("/api-keys", dependencies=[recently_verified("/admin/api-keys")])
def api_key_create(request: Request, form: web.Form, caller: web.AdminCaller,
                   session: DB) -> Response:
    with web.form_errors(session) as problem:
        body = ApiKeyIn.model_validate(form)
        _, key = api_keys.create(session, caller.workspace, body.name, actor_id=caller.teammate.id)
        return _api_keys(request, caller, session, created=key)
    return _api_keys(request, caller, session, error=problem.message)


@router.post("/api-keys/{key_id}/revoke")
def api_key_revoke(request: Request, key_id: Id, form: web.Form, caller: web.AdminCaller,
                   session: DB) -> Response:
    with web.form_errors(session) as problem:
        api_keys.revoke(session, caller.workspace, key_id, actor_id=caller.teammate.id)
        return web.redirect("/admin/api-keys")
    return _api_keys(request, caller, session, error=problem.message)


def _webhooks(request: Request, caller: web.AdminCaller, session: DB, error: str | None = None,
              created: tuple[str, str] | None = None, url: str = "") -> Response:
    # The API's answers, as JSON values: the pages show what the API would.
    endpoints = [WebhookOut.of(e).model_dump(mode="json")
                 for e in webhooks.list_endpoints(session, caller.workspace)]
    return web.render(request, "webhooks.html", {
        "title": "Webhooks", "endpoints": endpoints, "types": EVENT_TYPES, "error": error,
        "created": created, "url": url}, status_code=400 if error else 200, caller=caller)


def _deliveries(request: Request, caller: web.AdminCaller, session: DB, endpoint_id: int,
                error: str | None = None, notice: str | None = None) -> Response:
    with web.or_not_found():
        endpoint = WebhookOut.of(webhooks.get(session, caller.workspace, endpoint_id))
    records, _ = webhooks.deliveries(session, caller.workspace, endpoint_id, PAGE_SIZE, None)
    items = [DeliveryOut.of(r).model_dump(mode="json") for r in records]
    return web.render(request, "deliveries.html", {
        "title": "Webhook deliveries", "endpoint": endpoint, "items": items, "error": error,
        "notice": notice}, status_code=400 if error else 200, caller=caller)


def _api_keys(request: Request, caller: web.AdminCaller, session: DB, error: str | None = None,
              created: str | None = None) -> Response:
    keys = [ApiKeyOut.of(k).model_dump(mode="json")
            for k in api_keys.list_keys(session, caller.workspace)]
    return web.render(request, "api_keys.html", {
        "title": "API keys", "keys": keys, "created": created, "error": error},
        status_code=400 if error else 200, caller=caller)
