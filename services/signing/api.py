"""signing's HTTP handlers: authenticate the caller, parse, call the domain, serialise.

Refusals are the domain's to raise (errors.py, libs/consented_requests); the service kit renders them.
"""

from __future__ import annotations

import hashlib

from aiohttp import BodyPartReader, web
from pydantic import BaseModel

from libs.service import MalformedBody, parse_body, validate
from libs.service.problems import PayloadTooLarge, UnsupportedMediaType

from . import parsing, signing_requests
from .callers import device, relying_party
from .context import Signing
from .signing_requests import DocumentQuery, NewDocument, SignHashBody
from .tsa import parse_query, rejection
from .verify import VerifyCmsBody
from .x509 import pem

SIGNING = web.AppKey("signing", Signing)
routes = web.RouteTableDef()
NO_STORE = {"Cache-Control": "no-store"}


def answer(view: BaseModel, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A view model as JSON: the fields the domain set (a field left out stays out, one set to None is null)."""
    return web.json_response(view.model_dump(mode="json", exclude_unset=True), status=status, headers=headers)


@routes.get("/v1/signing/ca")
async def ca_chain(request: web.Request) -> web.Response:
    authority = request.app[SIGNING].authority
    # The issuing CA first, then the root (RFC 5246 order, and what `openssl verify -untrusted` wants).
    return web.Response(text=pem(authority.issuing) + pem(authority.root), content_type="application/pem-certificate-chain",
                        headers={"Cache-Control": "max-age=3600"})


@routes.get("/v1/signing/crl")
async def crl(request: web.Request) -> web.Response:
    return web.Response(body=await request.app[SIGNING].crl(), content_type="application/pkix-crl",
                        headers={"Cache-Control": "max-age=60"})


@routes.get("/v1/signing/crl/root")
async def root_crl(request: web.Request) -> web.Response:
    return web.Response(body=await request.app[SIGNING].root_crl(), content_type="application/pkix-crl",
                        headers={"Cache-Control": "max-age=3600"})


@routes.post("/v1/signing/tsa")
async def timestamp(request: web.Request) -> web.Response:
    if request.content_type != "application/timestamp-query":
        raise UnsupportedMediaType(f"expected application/timestamp-query (RFC 3161), got {request.content_type or 'nothing'}")
    query = parse_query(await request.read())
    # RFC 3161 §3.4: every answer to a query is a TimeStampResp; a refusal is status rejection with its failInfo.
    if query is None:
        reply = rejection("bad_data_format", "the body is not a DER-encoded TimeStampReq")
    else:
        reply = await request.app[SIGNING].tsa.respond(query)
    return web.Response(body=reply.dump(), content_type="application/timestamp-reply", headers={"Cache-Control": "no-store"})


async def _document(request: web.Request, max_pdf: int) -> NewDocument:
    """A hash (JSON) or a PDF (application/pdf with ?document_name=, or multipart: document_name + document)."""
    query = validate(DocumentQuery, dict(request.query))
    if request.content_type == "application/json":
        body = await parse_body(request, SignHashBody)
        return NewDocument(kind="cms", document_name=body.document_name, sha256=body.sha256, purpose=body.purpose)
    if request.content_type == "application/pdf":
        name, purpose, pdf = query.document_name, query.purpose, await request.read()
    elif request.content_type == "multipart/form-data":
        name, purpose, pdf = await _multipart(request, max_pdf)
    else:
        raise UnsupportedMediaType("send application/json (a hash), application/pdf or multipart/form-data (a PDF)")
    if len(pdf) > max_pdf:
        raise PayloadTooLarge(f"the PDF is larger than {max_pdf} bytes")
    pages = await parsing.check_upload(request.app[SIGNING], pdf)
    return validate(NewDocument, {"kind": "pdf", "document_name": name or "", "purpose": purpose or None,
                                  "sha256": hashlib.sha256(pdf).hexdigest(), "pages": pages, "pdf": pdf})


async def _multipart(request: web.Request, max_pdf: int) -> tuple[str | None, str | None, bytes]:
    name = purpose = None
    pdf = b""
    try:
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "document":
                pdf = await part.read(decode=True)
                name = name or part.filename
            elif part.name in ("document_name", "purpose"):
                value = (await part.read(decode=True)).decode("utf-8", errors="strict")
                name, purpose = (value, purpose) if part.name == "document_name" else (name, value)
            if len(pdf) > max_pdf:
                raise PayloadTooLarge(f"the PDF is larger than {max_pdf} bytes")
    except (ValueError, UnicodeDecodeError, AssertionError):
        raise MalformedBody("the multipart body is malformed") from None
    if not pdf:
        raise MalformedBody("the multipart body has no `document` part")
    return name, purpose, pdf


@routes.post("/v1/signing/requests")
async def create_request(request: web.Request) -> web.Response:
    signing = request.app[SIGNING]
    caller = await relying_party(request, signing.jwks, signing.settings.issuer)
    new = await _document(request, signing.settings.max_pdf_bytes)
    return answer(await signing_requests.create(signing, caller, new), status=201)


@routes.get("/v1/signing/requests/{request_id}")
async def show_request(request: web.Request) -> web.Response:
    signing = request.app[SIGNING]
    caller = await relying_party(request, signing.jwks, signing.settings.issuer)
    return answer(await signing_requests.status(signing, caller, request.match_info["request_id"]), headers=NO_STORE)


@routes.get("/v1/signing/requests/{request_id}/result")
async def take_result(request: web.Request) -> web.Response:
    signing = request.app[SIGNING]
    caller = await relying_party(request, signing.jwks, signing.settings.issuer)
    body, media_type = await signing_requests.take_result(signing, caller, request.match_info["request_id"])
    extension = "pdf" if media_type == "application/pdf" else "p7s"
    return web.Response(body=body, content_type=media_type, headers={
        **NO_STORE, "Content-Disposition": f'attachment; filename="signed-{request.match_info["request_id"]}.{extension}"'})


@routes.post("/v1/signing/requests/{request_id}/claim")
async def claim_request(request: web.Request) -> web.Response:
    signing = request.app[SIGNING]
    citizen = await device(request, signing.jwks, signing.settings.issuer)
    return answer(await signing_requests.claim(signing, citizen, request.match_info["request_id"]), status=201)


@routes.post("/v1/signing/verify")
async def verify(request: web.Request) -> web.Response:
    signing = request.app[SIGNING]
    if request.content_type == "application/pdf":
        document: bytes | VerifyCmsBody = await request.read()
        if len(document) > signing.settings.max_pdf_bytes:
            raise PayloadTooLarge(f"the PDF is larger than {signing.settings.max_pdf_bytes} bytes")
    else:
        document = await parse_body(request, VerifyCmsBody)
    return web.json_response(await parsing.verification_report(signing, document), headers=NO_STORE)
