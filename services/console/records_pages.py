"""Admin records: webhooks (with their deliveries) and API keys."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request, Response

from services.api.deps import DB
from services.api.routes.checks import ApiKeyIn, ApiKeyOut
from services.api.routes.events import CloudEvent
from services.api.routes.webhooks import DeliveryOut, WebhookOut
from services.api.schemas import WebhookIn
from services.api.types import Id
from services.console import delivery_words, web
from services.console.recent_factor import recently_verified
from services.errors import N_
from services.events.catalog import EventType
from services.host_checks import api_keys
from services.timestamps import rfc3339
from services.webhooks import manage
from services.webhooks import service as webhooks

router = APIRouter(prefix="/admin", include_in_schema=False)
EVENT_TYPES = [t.value for t in EventType]
PAGE_SIZE = 50
ROTATION_OVERLAP = timedelta(days=1)  # the API's default: receivers have a day to switch


@router.get("/webhooks")
def webhooks_page(request: Request, caller: web.AdminCaller, session: DB) -> Response:
    return _webhooks(request, caller, session)


@router.post("/webhooks", dependencies=[recently_verified("/admin/webhooks")])
def webhook_add(request: Request, form: web.Form, caller: web.AdminCaller, session: DB) -> Response:
    types = ["*"] if form.get("all_types") == "on" else [t for t in EVENT_TYPES if form.get(t)]
    if not types:
        return _webhooks(request, caller, session, url=form.get("url", ""),
                         error=N_("Choose at least one event type, or All events."))
    with web.form_errors(session) as problem:
        body = WebhookIn.model_validate({"url": form.get("url", ""), "event_types": types})
        endpoint, secret = webhooks.create(session, caller.workspace, body.url, body.event_types,
                                           actor_id=caller.teammate.id)
        return _webhooks(request, caller, session, created=(endpoint.url, secret))
    return _webhooks(request, caller, session, error=problem.message, url=form.get("url", ""))


@router.get("/webhooks/{endpoint_id}/delete")
def webhook_delete_confirm(request: Request, endpoint_id: Id, caller: web.AdminCaller,
                           session: DB) -> Response:
    with web.or_not_found():
        endpoint = webhooks.get(session, caller.workspace, endpoint_id)
    return web.render(request, "webhook_delete_confirm.html", {
        "title": N_("Delete a webhook"), "endpoint": WebhookOut.of(endpoint)}, caller=caller)


@router.post("/webhooks/{endpoint_id}/delete")
def webhook_delete(request: Request, endpoint_id: Id, form: web.Form, caller: web.AdminCaller,
                   session: DB) -> Response:
    with web.form_errors(session) as problem:
        webhooks.delete(session, caller.workspace, endpoint_id, actor_id=caller.teammate.id)
        return web.redirect("/admin/webhooks?deleted=1")
    return _webhooks(request, caller, session, error=problem.message)


@router.post("/webhooks/{endpoint_id}/test")
def webhook_test(request: Request, endpoint_id: Id, form: web.Form, caller: web.AdminCaller,
                 session: DB) -> Response:
    with web.form_errors(session) as problem:
        manage.send_test(session, caller.workspace, endpoint_id)
        return web.redirect(f"/admin/webhooks/{endpoint_id}?tested=1")
    return _webhooks(request, caller, session, error=problem.message)


@router.post("/webhooks/{endpoint_id}/rotate")
def webhook_rotate(request: Request, endpoint_id: Id, form: web.Form, caller: web.AdminCaller,
                   session: DB) -> Response:
    with web.form_errors(session) as problem:
        secret, until = manage.rotate_secret(session, caller.workspace, endpoint_id,
                                             ROTATION_OVERLAP, actor_id=caller.teammate.id)
        endpoint = webhooks.get(session, caller.workspace, endpoint_id)
        return _webhooks(request, caller, session,
                         rotated=(endpoint.url, secret, rfc3339(until) if until else None))
    return _webhooks(request, caller, session, error=problem.message)


@router.get("/webhooks/{endpoint_id}")
def deliveries_page(request: Request, endpoint_id: Id, caller: web.AdminCaller, session: DB,
                    redelivered: str = "", tested: str = "") -> Response:
    notice = (N_("Queued to be sent again.") if redelivered else
              N_("A test event is on its way; its delivery is listed below.") if tested else None)
    return _deliveries(request, caller, session, endpoint_id, notice=notice)


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
              created: tuple[str, str] | None = None, url: str = "",
              rotated: tuple[str, str, str | None] | None = None) -> Response:
    # The API's answers, as JSON values: the pages show what the API would.
    endpoints = [WebhookOut.of(e).model_dump(mode="json")
                 for e in webhooks.list_endpoints(session, caller.workspace)]
    deleted = request.query_params.get("deleted") == "1" and not (error or created or rotated)
    return web.render(request, "webhooks.html", {
        "title": N_("Webhooks"), "endpoints": endpoints, "types": EVENT_TYPES, "error": error,
        "created": created, "rotated": rotated, "url": url,
        "notice": N_("The webhook was deleted; nothing more is sent to it.") if deleted else None},
        status_code=400 if error else 200, caller=caller)


def _deliveries(request: Request, caller: web.AdminCaller, session: DB, endpoint_id: int,
                error: str | None = None, notice: str | None = None) -> Response:
    with web.or_not_found():
        endpoint = WebhookOut.of(webhooks.get(session, caller.workspace, endpoint_id))
    records, _ = webhooks.deliveries(session, caller.workspace, endpoint_id, PAGE_SIZE, None)
    locale = web.page_locale(request, caller)
    items = [_delivery(r, caller.workspace.slug, locale) for r in records]
    return web.render(request, "deliveries.html", {
        "title": N_("Webhook deliveries"), "endpoint": endpoint, "items": items, "error": error,
        "notice": notice}, status_code=400 if error else 200, caller=caller)


def _delivery(record: webhooks.DeliveryRecord, slug: str, locale: str) -> dict[str, object]:
    """A delivery as the API lists it, with its payload (the event as the endpoint receives
    it) and its last attempt in words (in `locale`)."""
    item = DeliveryOut.of(record).model_dump(mode="json")
    last = record.attempts[-1] if record.attempts else None
    said = delivery_words.problem(last.error, last.response_status) if last else ""
    item["problem"] = web.words(locale, said)
    item["payload"] = CloudEvent.of(record.event, slug).model_dump_json(indent=2)
    return item


def _api_keys(request: Request, caller: web.AdminCaller, session: DB, error: str | None = None,
              created: str | None = None) -> Response:
    keys = [ApiKeyOut.of(k).model_dump(mode="json")
            for k in api_keys.list_keys(session, caller.workspace)]
    return web.render(request, "api_keys.html", {
        "title": N_("API keys"), "keys": keys, "created": created, "error": error},
        status_code=400 if error else 200, caller=caller)
