"""The OpenAPI description served at ``GET /openapi.json``."""

from __future__ import annotations

from typing import Any

from xned import __version__

_MENTION_IN = {
    "oneOf": [
        {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2},
        {
            "type": "object",
            "properties": {"start": {"type": "integer"}, "end": {"type": "integer"}},
            "required": ["start", "end"],
        },
    ],
    "description": "A character span [start, end) to link (NED mode); without mentions they are detected.",
}
_DOC_IN: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "text": {"type": "string"},
        "lang": {"type": "string", "description": "ISO 639 code (es, pt-BR, zh-Hant are normalised)"},
        "mentions": {"type": "array", "items": _MENTION_IN},
    },
    "required": ["text"],
}
_CANDIDATE = {
    "type": "object",
    "properties": {
        "qid": {"type": "string"},
        "label": {"type": "string"},
        "score": {"type": "number"},
        "prior": {"type": "number"},
        "similarity": {"type": ["number", "null"]},
        "expert": {"type": ["number", "null"]},
    },
}
_MENTION_OUT = {
    "type": "object",
    "properties": {
        "start": {"type": "integer"},
        "end": {"type": "integer"},
        "text": {"type": "string"},
        "qid": {"type": ["string", "null"], "description": "null = NIL"},
        "label": {"type": ["string", "null"]},
        "score": {"type": ["number", "null"], "description": "calibrated confidence of the top candidate"},
        "prior": {"type": ["number", "null"]},
        "corrected": {"type": "boolean", "description": "present (true) when an analyst's correction decided it"},
        "nil_id": {
            "type": "string",
            "description": "a NIL mention's local identity (serve --nil-ids): one unknown entity, one id",
        },
        "candidates": {"type": "array", "items": _CANDIDATE},
    },
}
_DOC_OUT = {
    "type": "object",
    "properties": {
        "id": {"type": ["string", "null"]},
        "lang": {"type": ["string", "null"]},
        "text": {"type": "string"},
        "mentions": {"type": "array", "items": _MENTION_OUT},
        "error": {"type": "string", "description": "set when this document could not be linked"},
    },
}
_ERROR = {"type": "object", "properties": {"error": {"type": "string"}}}


def _err(desc: str) -> dict[str, Any]:
    return {"description": desc, "content": {"application/json": {"schema": _ERROR}}}


def _nil_post(
    summary: str, properties: dict[str, Any], required: list[str], responses: dict[str, Any]
) -> dict[str, Any]:
    """A ``POST /nil/...`` operation: a JSON object body and the NIL endpoints' errors."""
    body = {"type": "object", "properties": properties, "required": required}
    return {
        "post": {
            "summary": summary,
            "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
            "responses": {
                **responses,
                "401": _err("Token missing or wrong"),
                "409": _err("The server gives no NIL identities"),
                "422": _err("Wrong request shape"),
            },
        }
    }


OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "xned", "version": __version__, "description": "Offline cross-lingual entity linking."},
    "paths": {
        "/link": {
            "post": {
                "summary": "Link the mentions of one text or of a list of documents",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "oneOf": [
                                    _DOC_IN
                                    | {"properties": _DOC_IN["properties"] | {"candidates": {"type": "boolean"}}},
                                    {
                                        "type": "object",
                                        "properties": {
                                            "documents": {"type": "array", "items": _DOC_IN},
                                            "lang": {"type": "string"},
                                            "candidates": {"type": "boolean"},
                                        },
                                        "required": ["documents"],
                                    },
                                ]
                            }
                        }
                    },
                },
                "responses": {
                    "200": {
                        "description": "One record per document, in order",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {"documents": {"type": "array", "items": _DOC_OUT}},
                                }
                            }
                        },
                    },
                    "400": _err("Not JSON, or a request-wide input error"),
                    "401": _err("Token missing or wrong"),
                    "413": _err("Body, document count or document length over the limit"),
                    "422": _err("Wrong request shape"),
                    "503": _err("Too many concurrent requests"),
                    "504": _err("Linking timed out"),
                },
            }
        },
        "/teach": {
            "post": {
                "summary": "Correct mentions: each refers to its qid (null: to no entity of the KB)",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "oneOf": [
                                    {
                                        "type": "object",
                                        "properties": {
                                            "text": {"type": "string"},
                                            "lang": {"type": "string"},
                                            "start": {"type": "integer"},
                                            "end": {"type": "integer"},
                                            "qid": {"type": ["string", "null"]},
                                        },
                                        "required": ["text", "start", "end", "qid"],
                                    },
                                    {
                                        "type": "object",
                                        "properties": {"documents": {"type": "array", "items": _DOC_IN}},
                                        "required": ["documents"],
                                        "description": "every mention of every document carries its qid",
                                    },
                                ]
                            }
                        }
                    },
                },
                "responses": {
                    "200": {"description": "The stored corrections and how many this bundle has"},
                    "400": _err("Bad span, language, or a QID the KB does not have"),
                    "401": _err("Token missing or wrong"),
                    "413": _err("Body over the limit"),
                    "422": _err("Wrong request shape"),
                },
            }
        },
        "/nil/merge": _nil_post(
            "Merge two NIL clusters that are one unknown entity (xned serve --nil-ids)",
            {"keep": {"type": "string"}, "other": {"type": "string"}},
            ["keep", "other"],
            {"200": {"description": "The kept id and the merged one"}, "404": _err("No such NIL cluster")},
        ),
        "/nil/promote": _nil_post(
            "Add a NIL cluster to the bundle as an entity with a local QID (xned serve --nil-ids)",
            {k: {"type": "string"} for k in ("nil_id", "label", "description", "type")},
            ["nil_id", "label"],
            {
                "200": {"description": "The cluster id, its new QID, label and names"},
                "400": _err("No such cluster, or the bundle is read-only"),
            },
        ),
        "/info": {"get": {"summary": "The bundle's summary and the server's limits", "responses": {"200": {}}}},
        "/health": {"get": {"summary": "Liveness", "responses": {"200": {}}}},
    },
}
