"""The shape of Pelanor's upload request, as settings: method, path, body, names, query.

Pelanor does not publish its OpenAI upload endpoint, so every part of the request that is a
guess is a setting (README "If Pelanor's endpoint differs"), and the defaults reproduce the
contract this project adopts: ``POST`` to ``/v1/integrations/openai/{integration_id}/upload``,
a multipart form with the CSV as part ``file`` (``text/csv``) and the field ``month``.

Rules:

- Templates (the path, form fields, query parameters) use ``str.format`` syntax with the
  placeholders in :data:`PLACEHOLDERS` only; anything else, a format spec or an unmatched
  brace is refused at start, one line per setting, as is a combination that cannot work
  (form fields or a part name with a raw body).
- The path stays the path it says: a ``.`` or ``..`` segment (which would lead elsewhere on
  the server), a ``#`` (which ends a URL's path), a control character or an absurd length
  is refused at start, as is an ID placed in it (``integration_id``, ``organization_id``)
  that no path segment can carry: ``.``, ``..``, a control character, or longer than
  :data:`MAX_ID_LENGTH` once encoded. Every value is encoded as one path segment.
- The CSV is never held in memory: it is streamed from its file, which the caller opens
  anew for every attempt (a retry sends it again from its start).
- This module builds the request; it knows nothing of the token (the caller passes the
  headers) and :func:`describe` never shows a header.
- The ``upload_*`` settings are declared in :mod:`target_pelanor.settings`, which reads them
  into one :class:`UploadShape` here (:func:`shape_problems`, :func:`upload_shape`): this
  module knows the request's format, so it reads that group of settings, and their defaults
  are :data:`DEFAULT_SHAPE`'s. Nothing else calls these two.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Final
from urllib.parse import quote, unquote

from openai_costs.export import month_days
from openai_costs.lazy_import import lazy_module

if TYPE_CHECKING:
    import httpx
else:  # loaded at first use (openai_costs.lazy_import)
    httpx = lazy_module("httpx")

__all__ = [
    "BODIES",
    "DEFAULT_SHAPE",
    "DEFAULT_UPLOAD_PATH",
    "METHODS",
    "PLACEHOLDERS",
    "MonthValues",
    "UploadShape",
    "check_upload_path",
    "describe",
    "id_problem",
    "render_path",
    "shape_problems",
    "upload_shape",
]

DEFAULT_UPLOAD_PATH: Final = "/v1/integrations/openai/{integration_id}/upload"
METHODS: Final = ("POST", "PUT")
BODIES: Final = ("multipart", "raw")
DEFAULT_FILE_FIELD: Final = "file"
#: The form fields of a multipart upload when upload_fields is not set.
DEFAULT_FIELDS: Final = (("month", "{month}"),)
DEFAULT_CONTENT_TYPE: Final = "text/csv"
#: What a template may name, in the order the messages list them.
PLACEHOLDERS: Final = (
    "month",
    "first_day",
    "last_day",
    "organization_id",
    "integration_id",
    "file_name",
)
_LISTED: Final = ", ".join("{" + name + "}" for name in PLACEHOLDERS)
#: Longest ID (URL-encoded) placed in a path or a file name; Pelanor's and OpenAI's are far
#: shorter, and file systems take 255 bytes a name.
MAX_ID_LENGTH: Final = 200
#: Longest upload_path template; URLs much longer are refused by servers anyway.
MAX_PATH_LENGTH: Final = 1000
#: A media type, optionally with parameters: ``text/csv``, ``text/csv; charset=utf-8``.
_MEDIA_TYPE: Final = re.compile(r"[\w!#$&^.+-]+/[\w!#$&^.+-]+(\s*;\s*[\w.+-]+=[\w.+\"/-]+)*")


@dataclass(frozen=True)
class MonthValues:
    """What a template can say about one upload."""

    month: str
    first_day: str
    last_day: str
    organization_id: str
    integration_id: str
    file_name: str

    @classmethod
    def of(
        cls, month: str, *, organization_id: str, integration_id: str, file_name: str
    ) -> MonthValues:
        """The values of ``month`` (YYYY-MM); its last day is the last day in it (inclusive)."""
        days = month_days(month)
        return cls(
            month=month,
            first_day=days[0].isoformat(),
            last_day=days[-1].isoformat(),
            organization_id=organization_id,
            integration_id=integration_id,
            file_name=file_name,
        )

    def as_dict(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in PLACEHOLDERS}


@dataclass(frozen=True)
class UploadShape:
    """How the request is built; the defaults are the contract this project adopts."""

    method: str = "POST"
    body: str = "multipart"
    path: str = DEFAULT_UPLOAD_PATH
    file_field: str = DEFAULT_FILE_FIELD
    fields: tuple[tuple[str, str], ...] = DEFAULT_FIELDS
    query: tuple[tuple[str, str], ...] = ()
    content_type: str = DEFAULT_CONTENT_TYPE

    def placeholders(self) -> set[str]:
        """Every placeholder the path, the fields and the query use."""
        templates = [self.path, *(t for _, t in self.fields), *(t for _, t in self.query)]
        return {name for template in templates for name in _fields_of(template)}

    def build(
        self,
        http: httpx.Client,
        base_url: str,
        values: MonthValues,
        csv: IO[bytes] | bytes,
        headers: Mapping[str, str],
    ) -> httpx.Request:
        """The request for one attempt. ``csv`` is an open file (streamed by httpx, in
        chunks, with its length from the file) or, for tests and small files, bytes."""
        given = values.as_dict()
        url = base_url + render_path(self.path, values)
        params = httpx.QueryParams([(name, t.format(**given)) for name, t in self.query])
        if self.body == "raw":
            return http.build_request(
                self.method,
                url,
                params=params,
                headers={**headers, "Content-Type": self.content_type},
                content=csv,
            )
        return http.build_request(
            self.method,
            url,
            params=params,
            headers=dict(headers),
            data={name: template.format(**given) for name, template in self.fields},
            files={self.file_field: (values.file_name, csv, self.content_type)},
        )


DEFAULT_SHAPE: Final = UploadShape()


def render_path(template: str, values: MonthValues) -> str:
    """The path with each placeholder's value URL-encoded as one path segment."""
    return template.format(**{k: quote(v, safe="") for k, v in values.as_dict().items()})


def describe(request: httpx.Request, shape: UploadShape, values: MonthValues) -> str:
    """One line saying what is sent: method, URL, content type, parts, bytes. Never a
    header (the token is in one); the caller scrubs the line of secrets all the same."""
    content_type = request.headers.get("Content-Type", "").split(";")[0]
    size = request.headers.get("Content-Length", "an unknown number of")
    given = values.as_dict()
    if shape.body == "raw":
        body = f"body: the CSV {values.file_name}"
    else:
        parts = [f"{name}={template.format(**given)}" for name, template in shape.fields]
        parts.append(f"{shape.file_field}=the CSV {values.file_name} ({shape.content_type})")
        body = "parts: " + ", ".join(parts)
    return (
        f"upload request: {request.method} {request.url}; Content-Type: {content_type}; "
        f"{body}; {size} bytes"
    )


def check_upload_path(upload_path: str) -> str:
    """Refuse an upload_path that is not an absolute path with known placeholders only, or
    that would not stay the path it says (see the module docstring)."""
    if len(upload_path) > MAX_PATH_LENGTH:
        raise ValueError(
            f"upload_path is {len(upload_path):,} characters long, more than an upload path "
            f"needs (at most {MAX_PATH_LENGTH:,}); the default is {DEFAULT_UPLOAD_PATH}"
        )
    if not upload_path.startswith("/"):
        raise ValueError(
            f"upload_path must start with '/' (got {upload_path!r}); "
            f"the default is {DEFAULT_UPLOAD_PATH}"
        )
    if not upload_path.isprintable():
        raise ValueError(
            f"upload_path has a control character, such as a line break (got {upload_path!r}); "
            "write it on one line"
        )
    if "#" in upload_path:
        raise ValueError(
            f"upload_path has '#', which ends a URL's path, so what follows it would never be "
            f"sent (got {upload_path!r}); remove it, or write %23 for a '#' in the path"
        )
    if any(unquote(segment) in (".", "..") for segment in upload_path.split("/")):
        raise ValueError(
            f"upload_path has a '.' or '..' segment, which would send the upload elsewhere on "
            f"the server (got {upload_path!r}); write the path without it"
        )
    _check_template("upload_path", upload_path)
    return upload_path


def id_problem(setting: str, value: str) -> str | None:
    """Why an ID (``integration_id``, ``organization_id``) cannot be placed in a path as one
    segment, or None."""
    source = _ID_SOURCES.get(setting, "where it was issued")
    if value in (".", ".."):
        return (
            f"{setting} {value!r} is not an ID: it names a folder, and would move the upload "
            f"path; copy the ID from {source}"
        )
    if not value.isprintable():
        return (
            f"{setting} has a control character, such as a line break (got {_cut(value)}); "
            f"copy the ID again from {source}, without it"
        )
    if len(quote(value, safe="")) > MAX_ID_LENGTH:
        return (
            f"{setting} is {len(value):,} characters long ({_cut(value)}), more than an ID "
            f"has (at most {MAX_ID_LENGTH} once URL-encoded); copy the ID from {source}"
        )
    return None


#: Where each ID placed in a path is copied from, for the messages.
_ID_SOURCES: Final = {
    "integration_id": "the integration's page in Pelanor",
    "organization_id": "OpenAI's organization settings (org-...)",
}


def _cut(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:37] + "...")


def upload_shape(config: Mapping[str, Any]) -> UploadShape:
    """The shape the settings describe; ValueError (the first problem) if they cannot work."""
    shape, problems = _read(config)
    if problems:
        raise ValueError(problems[0])
    return shape


def shape_problems(config: Mapping[str, Any]) -> list[str]:
    """Every problem with the upload_* settings, one line each, and with the IDs placed in
    the upload path: ``integration_id`` always (it also names this machine's upload
    records and locks), ``organization_id`` when the path uses it."""
    shape, problems = _read(config)
    placed = ["integration_id"]
    if "{organization_id}" in shape.path:
        placed.append("organization_id")
    for setting in placed:
        value = config.get(setting)
        if isinstance(value, str) and (problem := id_problem(setting, value)):
            problems.append(problem)
    return problems


def _read(config: Mapping[str, Any]) -> tuple[UploadShape, list[str]]:
    problems: list[str] = []

    def choice(setting: str, allowed: tuple[str, ...], default: str) -> str:
        value = config.get(setting) or default
        if value not in allowed:
            problems.append(f"{setting} must be one of {', '.join(allowed)} (got {value!r})")
            return default
        return str(value)

    method = choice("upload_method", METHODS, DEFAULT_SHAPE.method)
    body = choice("upload_body", BODIES, DEFAULT_SHAPE.body)
    path = config.get("upload_path") or DEFAULT_UPLOAD_PATH
    try:
        check_upload_path(path)
    except ValueError as problem:
        problems.append(str(problem))
    file_field = config.get("upload_file_field") or DEFAULT_FILE_FIELD
    content_type = config.get("upload_content_type") or DEFAULT_CONTENT_TYPE
    if not _is_name(file_field):
        problems.append(
            "upload_file_field must be a name without control characters, quotes or "
            f"backslashes (got {file_field!r})"
        )
    if not isinstance(content_type, str) or not _MEDIA_TYPE.fullmatch(content_type):
        problems.append(
            f"upload_content_type must be a media type such as text/csv (got {content_type!r})"
        )
    raw_fields = config.get("upload_fields")
    fields = _templates("upload_fields", raw_fields, problems)
    query = _templates("upload_query", config.get("upload_query"), problems)
    if body == "raw":
        if fields:
            problems.append(
                "upload_fields cannot be used with upload_body raw (the CSV is the whole "
                "body); send them as upload_query, or set upload_body to multipart"
            )
        if file_field != DEFAULT_FILE_FIELD:
            problems.append(
                "upload_file_field cannot be used with upload_body raw (the CSV is the whole "
                "body, not a part); unset it, or set upload_body to multipart"
            )
        fields = ()
    elif raw_fields is None:
        fields = DEFAULT_FIELDS
    elif file_field in dict(fields):
        problems.append(
            f"upload_fields has a field named {file_field!r}, the name of the CSV's part "
            "(upload_file_field); rename one of them"
        )
    shape = UploadShape(
        method=method,
        body=body,
        path=path,
        file_field=file_field if isinstance(file_field, str) else DEFAULT_FILE_FIELD,
        fields=fields,
        query=query,
        content_type=content_type if isinstance(content_type, str) else DEFAULT_CONTENT_TYPE,
    )
    return shape, problems


def _templates(setting: str, raw: object, problems: list[str]) -> tuple[tuple[str, str], ...]:
    """A name -> template object, checked; ``()`` when unset."""
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        problems.append(
            f'{setting} must be an object of name -> template, such as {{"month": "{{month}}"}}'
        )
        return ()
    pairs: list[tuple[str, str]] = []
    for name, template in raw.items():
        if not (isinstance(name, str) and _is_name(name)):
            problems.append(
                f"{setting} has a name that is empty or has control characters, quotes or "
                f"backslashes: {name!r}"
            )
        elif not isinstance(template, str):
            problems.append(f"{setting}[{name!r}] must be text (a template), got {template!r}")
        else:
            try:
                _check_template(f"{setting}[{name!r}]", template)
            except ValueError as problem:
                problems.append(str(problem))
            else:
                pairs.append((name, template))
    return tuple(pairs)


def _is_name(value: object) -> bool:
    return (
        isinstance(value, str)
        and bool(value)
        and value.isprintable()
        and not any(c in value for c in '"\\')
    )


def _check_template(setting: str, template: str) -> None:
    """ValueError naming the setting if ``template`` has an unknown placeholder or an
    unmatched brace."""
    try:
        used = _fields_of(template)
    except ValueError:
        raise ValueError(
            f"{setting} has an unmatched {{ or }} (got {template!r}); write {{{{ and }}}} "
            "for a literal brace"
        ) from None
    unknown = sorted({name for name in used if name not in PLACEHOLDERS})
    if unknown:
        named = ", ".join("{" + name + "}" for name in unknown)
        raise ValueError(
            f"{setting} has unknown placeholder(s) {named}; the placeholders are {_LISTED}"
        )


def _fields_of(template: str) -> list[str]:
    """The placeholders of a template, each with any conversion or format spec attached
    (so ``{month!r}`` or ``{month:>8}`` is not a known placeholder)."""
    return [
        name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
        for _, name, spec, conversion in string.Formatter().parse(template)
        if name is not None
    ]
