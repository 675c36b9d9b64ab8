"""PREMIS 3 export of the provenance log (pure: an Arrow table in, XML bytes out).

One ``event`` per item x step (type, dateTime, detail with program, version and parameters,
outcome with the error when it failed), ``agent``\\ s for patina (software, version) and for
every model (software, with its weights sha256), ``object``\\ s for each master and each
derivative with their SHA-256 fixity, the derivative related to its master by a
``derivation`` relationship. The manifest's descriptive fields (title, date, creator,
collection, IIIF canvas) are each object's ``significantProperties``; its rights become one
``rights`` statement per distinct statement, linked from the objects it covers (a Creative
Commons URI as a licence, any other URI or text as "other" rights, the URI as documentation).
Elements follow the order of the PREMIS 3.0 schema
(https://www.loc.gov/standards/premis/v3/premis.xsd): objects, events, agents, rights.
"""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from typing import Any

import pyarrow as pa

from patina.manifests.provenance import described
from patina.manifests.published import identifier

Names = dict[str, tuple[str, str]]  # location -> (identifier type, value) in this document

PREMIS = "http://www.loc.gov/premis/v3"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
SCHEMA_LOCATION = f"{PREMIS} https://www.loc.gov/standards/premis/v3/premis.xsd"
ET.register_namespace("premis", PREMIS)
ET.register_namespace("xsi", XSI)

# Event types from the Library of Congress vocabulary (id.loc.gov/vocabulary/preservation/eventType).
EVENT_TYPES = {
    "read": "message digest calculation",
    "assess": "forensic feature analysis",
    "detect_damage": "forensic feature analysis",
    "write": "creation",
}
MODIFYING = "modification"  # inpaint, enhance, faces, colorize: the pixels change
MEDIA_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "TIFF": "image/tiff", "WEBP": "image/webp", "GIF": "image/gif"}
EXTENSION_TYPES = {".jpg": "image/jpeg", ".png": "image/png", ".tif": "image/tiff", ".webp": "image/webp"}


def _el(parent: ET.Element, name: str, text: str | None = None, **attrs: str) -> ET.Element:
    node = ET.SubElement(parent, f"{{{PREMIS}}}{name}", attrs)
    if text is not None:
        node.text = text
    return node


def _identifier(parent: ET.Element, kind: str, id_type: str, value: str, role: str | None = None) -> None:
    node = _el(parent, kind)
    prefix = kind
    _el(node, f"{prefix}Type", id_type)
    _el(node, f"{prefix}Value", value)
    if role is not None:
        _el(node, f"{prefix[: -len('Identifier')]}Role", role)


SIGNIFICANT = ("title", "date", "creator", "collection", "iiif_canvas")
"""Descriptive fields recorded as an object's significant properties (type = the field's name)."""


def rights_id(statement: str) -> str:
    """A stable local identifier of one rights statement."""
    return "rights-" + hashlib.sha256(statement.encode()).hexdigest()[:16]


def _object(
    root: ET.Element,
    names: Names,
    uri: str,
    sha256: str | None,
    media_type: str,
    source: str | None,
    event: str | None,
    properties: dict[str, str],
) -> None:
    obj = _el(root, "object", **{f"{{{XSI}}}type": "premis:file"})
    _identifier(obj, "objectIdentifier", *names[uri])
    for name in SIGNIFICANT:
        if properties.get(name):
            prop = _el(obj, "significantProperties")
            _el(prop, "significantPropertiesType", name)
            _el(prop, "significantPropertiesValue", properties[name])
    chars = _el(obj, "objectCharacteristics")
    _el(chars, "compositionLevel", "0")
    if sha256:
        fixity = _el(chars, "fixity")
        _el(fixity, "messageDigestAlgorithm", "SHA-256")
        _el(fixity, "messageDigest", sha256)
    designation = _el(_el(chars, "format"), "formatDesignation")
    _el(designation, "formatName", media_type)
    if source is not None:
        relation = _el(obj, "relationship")
        _el(relation, "relationshipType", "derivation")
        _el(relation, "relationshipSubType", "has source")
        _identifier(relation, "relatedObjectIdentifier", *names[source])
        if event is not None:
            _identifier(relation, "relatedEventIdentifier", "local", event)
    if properties.get("rights"):
        _identifier(obj, "linkingRightsStatementIdentifier", "local", rights_id(properties["rights"]))


def event_id(row: dict[str, Any]) -> str:
    return f"{row['run_id']}/{row['item_id']}/{row['stage_index']}-{row['stage']}"


def software_agent(version: str) -> str:
    return f"patina {version}"


def premis_document(table: pa.Table, include_paths: bool = False) -> bytes:
    """PREMIS 3 XML for every row of a provenance table. Masters and derivatives on the web or in object
    storage are identified by their URI; local ones by item id and role (``master/ITEM``), or with
    ``include_paths`` by their ``file://`` URI (:mod:`patina.manifests.published`)."""
    rows = sorted(table.to_pylist(), key=lambda r: (r["run_id"], r["item_id"], r["stage_index"] or 0))
    root = ET.Element(f"{{{PREMIS}}}premis", {"version": "3.0", f"{{{XSI}}}schemaLocation": SCHEMA_LOCATION})
    names: Names = {}
    for row in rows:
        for location, role in ((row["source_uri"], "master"), (row["output_uri"], "derivative")):
            if location and location not in names:
                kind, value = identifier(location, row["item_id"], role, include_paths)
                taken = {v for _, v in names.values()}
                names[location] = kind, next(f"{value}#{n}" for n in range(1, len(names) + 2)
                                             if f"{value}#{n}" not in taken) if value in taken else value  # fmt: skip
    covered = _objects(root, names, rows)
    for row in rows:
        _event(root, names, row)
    _agents(root, rows)
    _rights(root, names, covered)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _objects(root: ET.Element, names: Names, rows: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Master and derivative objects; returns ``{rights statement: [object URIs]}``."""
    masters: dict[str, tuple[str | None, str]] = {}
    derivatives: dict[str, tuple[str | None, str, str, str]] = {}
    fields: dict[tuple[str, str], dict[str, str]] = {}  # (run, item) -> its read row's descriptive fields
    for row in rows:
        if row["stage"] == "read":
            fields[row["run_id"], row["item_id"]] = described([row])
        if row["stage"] == "read" and row["status"] == "ok" and row["source_uri"]:
            fmt = json.loads(row["decisions"] or "{}").get("format", "")
            masters[row["source_uri"]] = (row["source_sha256"], MEDIA_TYPES.get(fmt, "application/octet-stream"))
        if row["stage"] == "write" and row["status"] == "ok" and row["output_uri"]:
            suffix = row["output_uri"][row["output_uri"].rfind(".") :]
            media = EXTENSION_TYPES.get(suffix, "application/octet-stream")
            derivatives[row["output_uri"]] = (row["output_sha256"], media, row["source_uri"], event_id(row))
    by_uri: dict[str, dict[str, str]] = {}
    for row in rows:  # each master and derivative takes the fields of the (latest) run that read it
        item = fields.get((row["run_id"], row["item_id"]))
        if item and row["stage"] == "read" and row["source_uri"]:
            by_uri[row["source_uri"]] = item
        if item and row["stage"] == "write" and row["output_uri"]:
            by_uri[row["output_uri"]] = item
    covered: dict[str, list[str]] = {}
    for uri, (sha, media) in masters.items():
        _object(root, names, uri, sha, media, None, None, by_uri.get(uri, {}))
    for uri, (sha, media, source, event) in derivatives.items():
        _object(root, names, uri, sha, media, source, event, by_uri.get(uri, {}))
    for uri in [*masters, *derivatives]:
        if statement := by_uri.get(uri, {}).get("rights"):
            covered.setdefault(statement, []).append(uri)
    return covered


def _rights(root: ET.Element, names: Names, covered: dict[str, list[str]]) -> None:
    """One ``rights`` entity per distinct statement, linked to every object it covers."""
    for statement, uris in sorted(covered.items()):
        rights = _el(_el(root, "rights"), "rightsStatement")
        _identifier(rights, "rightsStatementIdentifier", "local", rights_id(statement))
        is_uri = statement.startswith(("http://", "https://"))
        if is_uri and "creativecommons.org/" in statement:
            _el(rights, "rightsBasis", "license")
            info = _el(rights, "licenseInformation")
            _identifier(info, "licenseDocumentationIdentifier", "URI", statement)
            _el(info, "licenseTerms", statement)
        else:
            _el(rights, "rightsBasis", "other")
            info = _el(rights, "otherRightsInformation")
            if is_uri:  # e.g. a rightsstatements.org statement
                _identifier(info, "otherRightsDocumentationIdentifier", "URI", statement)
            _el(info, "otherRightsBasis", "rights statement" if is_uri else "manifest rights note")
            _el(info, "otherRightsNote", statement)
        for uri in uris:
            _identifier(rights, "linkingObjectIdentifier", *names[uri])


def _event(root: ET.Element, names: Names, row: dict[str, Any]) -> None:
    event = _el(root, "event")
    _identifier(event, "eventIdentifier", "local", event_id(row))
    _el(event, "eventType", EVENT_TYPES.get(row["stage"], MODIFYING))
    _el(event, "eventDateTime", row["started_at"].isoformat() if row["started_at"] else "")
    detail = (
        f"program={software_agent(row['patina_version'])}; stage={row['stage']}; model={row['model_id']}; "
        f"params={row['params']}; decisions={row['decisions']}"
    )
    _el(_el(event, "eventDetailInformation"), "eventDetail", _named(detail, names, row))
    outcome = _el(event, "eventOutcomeInformation")
    _el(outcome, "eventOutcome", row["status"])
    if row["error_message"]:
        note = f"{row['error_type']}: {row['error_message']}"
        _el(_el(outcome, "eventOutcomeDetail"), "eventOutcomeDetailNote", _named(note, names, row))
    _identifier(event, "linkingAgentIdentifier", "local", software_agent(row["patina_version"]), "executing program")
    if row["model_id"]:
        _identifier(event, "linkingAgentIdentifier", "local", row["model_id"], "implementer")
    if row["source_uri"]:
        _identifier(event, "linkingObjectIdentifier", *names[row["source_uri"]], "source")
    if row["stage"] == "write" and row["output_uri"]:
        _identifier(event, "linkingObjectIdentifier", *names[row["output_uri"]], "outcome")


def _named(text: str, names: Names, row: dict[str, Any]) -> str:
    """``text`` (an event's detail or error) with the row's own master and derivative locations replaced by
    their names in this document, so that an error such as "not found: /home/.../scan.tif" names no path
    that the identifiers leave out."""
    for location in (row["source_uri"], row["output_uri"]):
        if location and location in names and names[location][1] != location:
            for form in {location, location.removeprefix("file://")}:
                text = text.replace(form, names[location][1])
    return text


def _agents(root: ET.Element, rows: Iterable[dict[str, Any]]) -> None:
    software: set[str] = set()
    models: dict[str, str | None] = {}
    for row in rows:
        software.add(row["patina_version"])
        if row["model_id"]:
            models[row["model_id"]] = row["model_sha256"]
    for version in sorted(software):
        agent = _el(root, "agent")
        _identifier(agent, "agentIdentifier", "local", software_agent(version))
        _el(agent, "agentName", "patina")
        _el(agent, "agentType", "software")
        _el(agent, "agentVersion", version)
    for model_id, sha in sorted(models.items()):
        agent = _el(root, "agent")
        _identifier(agent, "agentIdentifier", "local", model_id)
        _el(agent, "agentName", model_id.split("@")[0])
        _el(agent, "agentType", "software")
        _el(agent, "agentVersion", model_id.rsplit("@", 1)[-1])
        _el(agent, "agentNote", f"weights sha256: {sha}" if sha else "no weights (classical operation)")
