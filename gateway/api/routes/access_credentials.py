"""Credentials for the control room: list, read, create or replace, delete,
blacklist, and CSV import and export (supervisors; a guard may blacklist).

Changes go through the running access service's :class:`CredentialStore`:
the row is committed, then the in-memory index its decisions use follows,
so a card blacklisted here is refused at the next read. A card value sent
in a body is hashed on arrival; the UID is kept for the roles that manage
cards and shown in full to supervisors and admins only. CSV import is all
or nothing: every bad line comes back in one 422.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.responses import PlainTextResponse

from gateway.access.cards import CardValueError
from gateway.access.credentials import (
    Credential,
    CredentialConflict,
    CredentialError,
    CredentialNotFound,
    CredentialStore,
)
from gateway.access.csvio import CsvError
from gateway.api.context import ApiContext
from gateway.api.deps import BAD_BODY, get_ctx, require_role
from gateway.api.principal import Principal
from gateway.api.roles import at_least
from gateway.api.routes.access import (
    MAX_PAGE,
    OFF,
    READ,
    AuditCall,
    credential_store,
)
from gateway.api.schemas.access import (
    CREDENTIAL_ID_PATTERN,
    BlacklistIn,
    CredentialIn,
    CredentialOut,
    CredentialPageOut,
    ImportOut,
    Kind,
    credential_from_body,
    credential_out,
)
from gateway.storage.eventstore import EventStoreError

__all__ = ["all_credentials", "csv_errors", "router"]

router = APIRouter(prefix="/access", tags=["access"])

EXPORT_PAGE = 1000
MAX_CSV_BYTES = 20 * 1024 * 1024

Ctx = Annotated[ApiContext, Depends(get_ctx)]
Guard = Annotated[Principal, Depends(require_role("guard"))]
Supervisor = Annotated[Principal, Depends(require_role("supervisor"))]
CredentialId = Annotated[
    str, Path(pattern=CREDENTIAL_ID_PATTERN, max_length=64, description="The credential's id.")
]

_ALL = {**READ, **OFF}
_ONE = {**READ, 404: {"description": "No such credential (or no access control on this site)."}}
_CHANGE = {**BAD_BODY, **_ONE, 422: {"description": "Invalid body."}}
_CSV_422 = {
    "description": "Bad rows: every one, with its line number (loc = ['body', line]); "
    "nothing was imported."
}


@router.get(
    "/credentials",
    response_model=CredentialPageOut,
    responses=_ALL,
    summary="Credentials by id, filtered (supervisor and above)",
)
async def list_credentials(
    principal: Supervisor,
    ctx: Ctx,
    kind: Annotated[Kind | None, Query(description="Only this kind.")] = None,
    group: Annotated[str | None, Query(max_length=64, description="Only this group.")] = None,
    text: Annotated[
        str | None, Query(max_length=128, description="In the id, holder, plate or unit.")
    ] = None,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> CredentialPageOut:
    found = await credential_store(ctx).query(
        kind=kind, group=group, text=text or None, limit=limit + 1, offset=offset
    )
    return CredentialPageOut(
        items=[credential_out(c, principal.role) for c in found[:limit]],
        next_offset=offset + limit if len(found) > limit else None,
    )


@router.get(
    "/credentials/export",
    name="credential.export",
    response_class=PlainTextResponse,
    responses={
        **_ALL,
        200: {"content": {"text/csv": {}}, "description": "The credentials as CSV (UTF-8)."},
        403: {"description": "with_uid=true needs the admin role."},
    },
    summary="Every credential as CSV (supervisor; with card UIDs: admin)",
)
async def export_credentials(
    request: Request,
    principal: Supervisor,
    ctx: Ctx,
    with_uid: Annotated[
        bool, Query(description="Include card UIDs (admin only; the export is audited).")
    ] = False,
) -> Response:
    from gateway.access.csvio import export_csv

    audit = AuditCall(ctx, request, principal, "credential.export")
    if with_uid and not at_least(principal.role, "admin"):
        await audit("", "denied", with_uid=True, needs="admin")
        raise HTTPException(403, "exporting card UIDs needs the role admin")
    try:
        creds = await all_credentials(credential_store(ctx))
    except EventStoreError as e:
        raise await audit.store_down("", e, with_uid=with_uid) from e
    await audit("", "ok", with_uid=with_uid, count=len(creds))
    site = ctx.site.config.site.id
    return Response(
        export_csv(creds, with_uid=with_uid, timezone=ctx.site.config.site.timezone),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{site}-credentials.csv"'},
    )


async def all_credentials(store: CredentialStore) -> list[Credential]:
    """Every credential, by id, read in pages."""
    out: list[Credential] = []
    while True:
        page = await store.query(limit=EXPORT_PAGE, offset=len(out))
        out.extend(page)
        if len(page) < EXPORT_PAGE:
            return out


@router.post(
    "/credentials/import",
    name="credential.import",
    response_model=ImportOut,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"text/csv": {"schema": {"type": "string"}}},
        }
    },
    responses={
        **_ALL,
        400: {"description": "The body is not UTF-8."},
        413: {"description": "The file is larger than 20 MiB."},
        409: {"description": "A card or plate of the file belongs to another credential."},
        415: {"description": "The body is not text/csv."},
        422: _CSV_422,
    },
    summary="Import credentials from CSV: all rows or none (supervisor and above)",
)
async def import_credentials(request: Request, principal: Supervisor, ctx: Ctx) -> ImportOut:
    """Columns: id,kind,holder,group,card,card_format,plate,valid_from,valid_until,
    uses_left,blacklisted,disabled,certifications,phone,unit,note (the export's).
    A row whose id exists replaces that credential."""
    from gateway.access.csvio import parse_csv

    audit = AuditCall(ctx, request, principal, "credential.import")
    store = credential_store(ctx)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in ("text/csv", "text/plain"):
        await audit("", "failed", reason="content_type", content_type=ctype)
        raise HTTPException(415, f"send the file as text/csv, not {ctype or 'nothing'}")
    raw = await request.body()
    if len(raw) > MAX_CSV_BYTES:
        await audit("", "failed", reason="too_large", bytes=len(raw))
        raise HTTPException(413, "the file is larger than 20 MiB: split it")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        await audit("", "failed", reason="not_utf8")
        raise HTTPException(400, f"the file is not UTF-8 ({e}); save it as CSV UTF-8") from e
    try:
        creds = parse_csv(text, store.hasher, ctx.clock, timezone=ctx.site.config.site.timezone)
    except CsvError as e:
        lines = sorted({p.line for p in e.problems})
        await audit("", "failed", reason="bad_rows", lines=lines[:100])
        errors = csv_errors(e)
        raise HTTPException(422, errors) from e
    replaced = sum(1 for c in creds if store.get(c.id) is not None)
    try:
        await store.upsert(creds)
    except CredentialConflict as e:
        await audit("", "failed", reason=str(e))
        raise HTTPException(409, str(e)) from e
    except CredentialError as e:
        await audit("", "failed", reason=str(e))
        raise HTTPException(422, str(e)) from e
    except EventStoreError as e:
        raise await audit.store_down("", e, rows=len(creds)) from e
    await audit("", "ok", created=len(creds) - replaced, replaced=replaced)
    return ImportOut(created=len(creds) - replaced, replaced=replaced, total=len(creds))


def csv_errors(e: CsvError) -> list[dict[str, Any]]:
    """A CsvError as FastAPI-style validation details: one per bad value, with
    its line (1 = the header) and column: ``loc = ["body", line, column]``."""
    return [
        {"loc": ["body", p.line, p.column], "msg": p.message, "type": "csv"} for p in e.problems
    ]


@router.get(
    "/credentials/{credential_id}",
    response_model=CredentialOut,
    responses=_ONE,
    summary="One credential (supervisor and above)",
)
async def get_credential(
    credential_id: CredentialId, principal: Supervisor, ctx: Ctx
) -> CredentialOut:
    cred = credential_store(ctx).get(credential_id)
    if cred is None:
        raise HTTPException(404, f"no credential {credential_id}")
    return credential_out(cred, principal.role)


@router.put(
    "/credentials/{credential_id}",
    name="credential.put",
    response_model=CredentialOut,
    responses={
        **_CHANGE,
        200: {"description": "Replaced."},
        201: {"description": "Created."},
        409: {"description": "The card, PIN or plate belongs to another credential."},
    },
    summary="Create or replace a credential (supervisor and above)",
)
async def put_credential(
    credential_id: CredentialId,
    body: CredentialIn,
    request: Request,
    response: Response,
    principal: Supervisor,
    ctx: Ctx,
) -> CredentialOut:
    audit = AuditCall(ctx, request, principal, "credential.put")
    store = credential_store(ctx)
    old = store.get(credential_id)
    detail: dict[str, Any] = {
        "created": old is None,
        "kind": body.kind,
        "group": body.group,
        "card": "set" if body.card else "kept" if body.card is None and old else "none",
        "pin": body.pin is not None,
        "blacklisted": body.blacklisted,
        "disabled": body.disabled,
    }
    try:
        cred = credential_from_body(body, store, credential_id, old, ctx.site.config.access)
        await store.upsert([cred])
    except CredentialConflict as e:
        await audit(credential_id, "failed", reason=str(e), **detail)
        raise HTTPException(409, str(e)) from e
    except (CredentialError, CardValueError) as e:
        await audit(credential_id, "failed", reason=str(e), **detail)
        raise HTTPException(422, str(e)) from e
    except EventStoreError as e:
        raise await audit.store_down(credential_id, e, **detail) from e
    await audit(credential_id, "ok", **detail)
    if old is None:
        response.status_code = 201
    return credential_out(store.get(credential_id) or cred, principal.role)


@router.delete(
    "/credentials/{credential_id}",
    name="credential.delete",
    status_code=204,
    responses=_ONE,
    summary="Delete a credential (supervisor and above)",
)
async def delete_credential(
    credential_id: CredentialId, request: Request, principal: Supervisor, ctx: Ctx
) -> Response:
    audit = AuditCall(ctx, request, principal, "credential.delete")
    store = credential_store(ctx)
    try:
        done = await store.delete(credential_id)
    except EventStoreError as e:
        raise await audit.store_down(credential_id, e) from e
    if not done:
        await audit(credential_id, "failed", reason="not_found")
        raise HTTPException(404, f"no credential {credential_id}")
    await audit(credential_id, "ok")
    return Response(status_code=204)


async def _set_blacklisted(
    ctx: ApiContext,
    request: Request,
    principal: Principal,
    credential_id: str,
    value: bool,
    reason: str,
) -> CredentialOut:
    action = "credential.blacklist" if value else "credential.unblacklist"
    audit = AuditCall(ctx, request, principal, action)
    store = credential_store(ctx)
    if store.get(credential_id) is None:
        await audit(credential_id, "failed", reason="not_found")
        raise HTTPException(404, f"no credential {credential_id}")
    try:
        cred = await store.set_blacklisted(credential_id, value)
    except CredentialNotFound as e:  # deleted meanwhile
        await audit(credential_id, "failed", reason="not_found")
        raise HTTPException(404, f"no credential {credential_id}") from e
    except EventStoreError as e:
        raise await audit.store_down(credential_id, e) from e
    await audit(credential_id, "ok", **({"note": reason} if reason else {}))
    return credential_out(cred, principal.role)


@router.post(
    "/credentials/{credential_id}/blacklist",
    name="credential.blacklist",
    response_model=CredentialOut,
    responses=_CHANGE,
    summary="Blacklist a credential: refused at every door (guard and above)",
)
async def blacklist(
    credential_id: CredentialId,
    request: Request,
    principal: Guard,
    ctx: Ctx,
    body: BlacklistIn | None = None,
) -> CredentialOut:
    reason = body.reason if body is not None else ""
    return await _set_blacklisted(ctx, request, principal, credential_id, True, reason)


@router.post(
    "/credentials/{credential_id}/unblacklist",
    name="credential.unblacklist",
    response_model=CredentialOut,
    responses=_CHANGE,
    summary="Take a credential off the blacklist (supervisor and above)",
)
async def unblacklist(
    credential_id: CredentialId,
    request: Request,
    principal: Supervisor,
    ctx: Ctx,
    body: BlacklistIn | None = None,
) -> CredentialOut:
    reason = body.reason if body is not None else ""
    return await _set_blacklisted(ctx, request, principal, credential_id, False, reason)
