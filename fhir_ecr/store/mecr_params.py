"""mECR's own search parameters: the community directory's searches that FHIR R4 does not define, and ``near``.

They are compiled into the same :class:`~.searchparams.SearchParam` objects as the spec's, indexed at write
time like them and listed in the CapabilityStatement with their ``https://mecr.dev/fhir/SearchParameter/...``
URL (docs/community.md):

==============================  =========  ================================================================
``HealthcareService?category``  token      the same rows as ``service-category`` (the Gravity SDOH code)
``HealthcareService?keyword``   special    a word of the name, description, alias, categories, types,
                                           program or organization (whole words, singular or plural: rows
                                           of the internal token parameter ``keyword-word``); repeat it to
                                           AND words (``keyword=food&keyword=bank``)
``HealthcareService?communication``  token  ``communication`` (a BCP-47 code: ``es``, ``urn:ietf:bcp:47|es``)
``HealthcareService?eligibility``    token  ``eligibility.code`` (``age``, ``income``, ``residency``, ``other``)
``HealthcareService?min-age`` / ``max-age``  number  the eligibility age range
``HealthcareService?age``       special    services whose age range includes the age (or that have none)
``HealthcareService?available-day``  special  open at some time that day (``mon`` ... ``sun``)
``HealthcareService?open-at``   special    ``mon-14:30``: open at that time of the week (``availableTime``)
``Location?near``               special    R4's ``latitude|longitude|distance|units`` (units ``km`` (default),
                                           ``mi``, ``m``; distance default 25 km), within the distance
``Location?near-postalcode``    special    ``postal code|distance|units``: near the centroid of the
                                           Locations with that postal code (no geocoding service)
==============================  =========  ================================================================

Distances use the equirectangular approximation (error well under 1% within 100 km), computed in SQL from the
latitude and longitude index rows after a bounding-box lookup on the latitude index, so a search reads only
the band of Locations around the point. Opening windows are indexed as ``[start, end]`` minutes of the week in
the date index (``available-window``, internal).
"""

from __future__ import annotations

import math
import re
from dataclasses import replace
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.visitors import InternalTraversal

from ..canonical import SEARCH_PARAMETER_BASE
from ..outcomes import bad_request
from .indexer import normalize_string
from .searchparams import SearchParam, _compile
from .tables import INDEX_TABLES

__all__ = ["mecr_params", "MECR_PARAM_BASE", "KM_PER_DEGREE", "DAYS", "week_minute", "distance_km"]

MECR_PARAM_BASE = SEARCH_PARAMETER_BASE
#: Kilometres per degree of latitude (mean Earth radius 6371.0 km).
KM_PER_DEGREE = 6371.0 * math.pi / 180
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_UNITS = {"km": 1.0, "mi": 1.609344, "[mi_i]": 1.609344, "m": 0.001}
_DEFAULT_KM = 25.0
_WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*", re.UNICODE)
_OPEN_AT = re.compile(r"^(mon|tue|wed|thu|fri|sat|sun)(?:-(\d{1,2}):(\d{2}))?$")
_LAT, _LON = "position-latitude", "position-longitude"
#: Words not worth an index row (English function words; a service's description is mostly these).
_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "for",
        "from",
        "has",
        "have",
        "in",
        "into",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "our",
        "that",
        "the",
        "their",
        "this",
        "to",
        "was",
        "we",
        "who",
        "will",
        "with",
        "you",
        "your",
        "all",
        "any",
        "can",
        "people",
    ]
)
_MAX_WORDS = 60  # index rows per service at most (a long description adds little past its first words)


def _raw(rtype: str, code: str, ptype: str, expression: str) -> dict[str, Any]:
    return {
        "resourceType": rtype,
        "code": code,
        "type": ptype,
        "expression": expression,
        "url": f"{MECR_PARAM_BASE}{rtype}-{code}",
    }


def _texts(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [
            t for key in ("text", "display", "value", "valueString") if key in node for t in _texts(node[key])
        ] + [t for c in node.get("coding") or () for t in _texts(c)]
    if isinstance(node, list):
        return [t for item in node for t in _texts(item)]
    return []


def _singular(word: str) -> str:
    """A naive English singular, so "pantries" finds "pantry" and "meals" finds "meal"."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _keyword_rows(resource: dict[str, Any]) -> list[str]:
    return list(dict.fromkeys(_singular(w) for w in _keywords(resource)))


def _keyword_lookup(c: Any) -> Any:
    words = []
    for value in c.values:
        found = _WORD.findall(value)
        if len(found) != 1:
            raise bad_request(
                f"keyword takes one word, not {value!r} (repeat keyword= for several)", expression="keyword"
            )
        words.append(_singular(normalize_string(found[0])))
    t = INDEX_TABLES["idx_token"].alias()
    return sa.select(t.c.res_pk.label("res_pk")).where(
        t.c.res_type == "HealthcareService", t.c.param == "keyword-word", t.c.code.in_(words)
    )


def _keywords(resource: dict[str, Any]) -> list[str]:
    texts = [resource.get("name"), resource.get("comment")]
    for key in ("category", "type", "specialty", "program", "providedBy"):
        texts += _texts(resource.get(key))
    texts += [
        e["extension"][1].get("valueString")
        for e in resource.get("extension") or ()
        if e.get("extension")
        and len(e["extension"]) == 2
        and e["extension"][0].get("valueCode") in ("alternate_name",)
    ]
    words = dict.fromkeys(normalize_string(w) for t in texts if isinstance(t, str) for w in _WORD.findall(t))
    return [w for w in words if len(w) > 1 and w not in _STOPWORDS][:_MAX_WORDS]  # the name's words first


def _minutes(time: Any) -> int | None:
    if not isinstance(time, str) or len(time) < 5:
        return None
    try:
        return int(time[0:2]) * 60 + int(time[3:5])
    except ValueError:
        return None


def _windows(resource: dict[str, Any]) -> list[tuple[int, int]]:
    """``availableTime`` as [start, end] minutes of the week (Monday 00:00 = 0), overnight hours split at
    midnight."""
    out: list[tuple[int, int]] = []
    for entry in resource.get("availableTime") or ():
        start, end = _minutes(entry.get("availableStartTime")), _minutes(entry.get("availableEndTime"))
        for day in entry.get("daysOfWeek") or ():
            if day not in DAYS:
                continue
            base = DAYS.index(day) * 1440
            if entry.get("allDay") or start is None or end is None:
                out.append((base, base + 1439))
            elif end > start:
                out.append((base + start, base + end - 1))
            else:  # open past midnight
                out.append((base + start, base + 1439))
                nxt = (DAYS.index(day) + 1) % 7 * 1440
                if end > 0:
                    out.append((nxt, nxt + end - 1))
    return sorted(set(out))


def _age_bound(bound: str) -> Any:
    def extract(resource: dict[str, Any]) -> list[Any]:
        out = []
        for entry in resource.get("eligibility") or ():
            for ext in entry.get("extension") or ():
                value = ((ext.get("valueRange") or {}).get(bound) or {}).get("value")
                if ext.get("url", "").endswith("/eligibility-age-range") and value is not None:
                    out.append(value)
        return out

    return extract


# --- SQL of the special parameters ---------------------------------------------------------------------------


def _age_sql(c: Any, key: Any) -> Any:
    ors = []
    for value in c.values:
        try:
            age = float(value)
        except ValueError:
            raise bad_request(f"age must be a number of years, not {value!r}", expression="age") from None
        low, high = INDEX_TABLES["idx_number"].alias(), INDEX_TABLES["idx_number"].alias()
        too_young = sa.exists(low.c.res_pk).where(
            low.c.res_pk == key, low.c.param == "min-age", low.c.value > age
        )
        too_old = sa.exists(high.c.res_pk).where(
            high.c.res_pk == key, high.c.param == "max-age", high.c.value < age
        )
        ors.append(sa.and_(sa.not_(too_young), sa.not_(too_old)))
    return sa.or_(*ors)


def week_minute(value: str) -> tuple[int, int]:
    """``mon-14:30`` -> (minute of the week, same); ``mon`` -> the whole day's [first, last] minute."""
    m = _OPEN_AT.match(value.strip().lower())
    if not m or (m.group(2) and (int(m.group(2)) > 23 or int(m.group(3)) > 59)):
        raise bad_request(
            f"open-at takes a day and a time such as mon-14:30, not {value!r}", expression="open-at"
        )
    base = DAYS.index(m.group(1)) * 1440
    if m.group(2) is None:
        return base, base + 1439
    minute = base + int(m.group(2)) * 60 + int(m.group(3))
    return minute, minute


def _available_day_sql(c: Any, key: Any) -> Any:
    return _open_at_sql(c, key, "available-day")


def _open_at_sql(c: Any, key: Any, name: str = "open-at") -> Any:
    ors = []
    for value in c.values:
        if name == "available-day" and "-" in value:
            raise bad_request(f"available-day takes a day (mon ... sun), not {value!r}", expression=name)
        low, high = week_minute(value)
        w = INDEX_TABLES["idx_date"].alias()
        ors.append(
            sa.exists(w.c.res_pk).where(
                w.c.res_pk == key, w.c.param == "available-window", w.c.low <= high, w.c.high >= low
            )
        )
    return sa.or_(*ors)


def _distance(parts: list[str], name: str) -> float:
    distance = parts[0] if parts and parts[0] else None
    unit = (parts[1] if len(parts) > 1 and parts[1] else "km").lower()
    if unit not in _UNITS:
        raise bad_request(f"{name}: unknown distance unit {unit!r} (km, mi or m)", expression=name)
    if distance is None:
        return _DEFAULT_KM
    try:
        km = float(distance) * _UNITS[unit]
    except ValueError:
        raise bad_request(
            f"{name}: the distance must be a number, not {distance!r}", expression=name
        ) from None
    if not 0 <= km <= 20_000:
        raise bad_request(f"{name}: the distance must be between 0 and 20000 km", expression=name)
    return km


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """The equirectangular distance the ``near`` search uses, in km."""
    dy = (lat2 - lat1) * KM_PER_DEGREE
    dx = (lon2 - lon1) * KM_PER_DEGREE * math.cos(math.radians((lat1 + lat2) / 2))
    return math.hypot(dx, dy)


class _SameLocation(sa.sql.expression.ColumnElement[bool]):
    """``lon.res_pk = lat.res_pk``: the longitude row of the Location whose latitude row is ``lat`` (see
    :func:`_within`). On PostgreSQL it reads ``lon.res_type = 'Location' AND lon.res_pk + 0 = lat.res_pk``, which
    no index can answer, so the planner scans the longitude band (``ix_number_lookup``) and hash joins it."""

    inherit_cache = True
    type = sa.Boolean()
    _is_implicitly_boolean = True
    _traverse_internals = [
        ("lon_pk", InternalTraversal.dp_clauseelement),
        ("lon_type", InternalTraversal.dp_clauseelement),
        ("lat_pk", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, lon_pk: Any, lon_type: Any, lat_pk: Any) -> None:
        self.lon_pk, self.lon_type, self.lat_pk = lon_pk, lon_type, lat_pk


@compiles(_SameLocation)
def _same_location(element: _SameLocation, compiler: Any, **kw: Any) -> str:
    return f"{compiler.process(element.lon_pk, **kw)} = {compiler.process(element.lat_pk, **kw)}"


@compiles(_SameLocation, "postgresql")
def _same_location_pg(element: _SameLocation, compiler: Any, **kw: Any) -> str:
    lon_pk, lat_pk = compiler.process(element.lon_pk, **kw), compiler.process(element.lat_pk, **kw)
    return f"{compiler.process(element.lon_type, **kw)} = 'Location' AND {lon_pk} + 0 = {lat_pk}"


def _within(lat0: Any, lon0: Any, cos0: Any, km: float) -> Any:
    """``SELECT res_pk`` of the Locations within ``km`` of (lat0, lon0): the latitude band (a range of the
    latitude index), the longitude row of each Location in it, the distance.

    How the longitude rows are found differs (:class:`_SameLocation`). SQLite probes each Location of the band
    for its longitude (``ix_number_res``), which it does well. PostgreSQL scans the longitude band too and hash
    joins the two: in Illinois a 10 km band holds ~900 Locations, of which ~100 are in the box, and the probes
    cost ~2,700 index pages a search where the two range scans cost ~30 (docs/community.md, "The distance
    search's plan"); SQLite, given the same two-band join, took 30 times as long."""
    lat, lon = INDEX_TABLES["idx_number"].alias(), INDEX_TABLES["idx_number"].alias()
    dlat = km / KM_PER_DEGREE
    # longitude band: at least the latitude band's width, wider towards the poles (cos0 >= 0.01)
    dlon = (
        dlat / max(cos0, 0.01) if isinstance(cos0, float) else dlat / sa.case((cos0 < 0.01, 0.01), else_=cos0)
    )
    dy = (lat.c.value - lat0) * KM_PER_DEGREE
    dx = (lon.c.value - lon0) * (KM_PER_DEGREE * cos0 if isinstance(cos0, float) else cos0 * KM_PER_DEGREE)
    cond = sa.and_(
        lat.c.res_type == "Location",
        lat.c.param == _LAT,
        lat.c.value >= lat0 - dlat,
        lat.c.value <= lat0 + dlat,
        lon.c.param == _LON,
        lon.c.value >= lon0 - dlon,
        lon.c.value <= lon0 + dlon,
        dy * dy + dx * dx <= km * km,
    )
    return (
        sa.select(lat.c.res_pk.label("res_pk"))
        .select_from(lat)
        .join(lon, _SameLocation(lon.c.res_pk, lon.c.res_type, lat.c.res_pk))
        .where(cond)
    )


def _union(selects: list[Any]) -> Any:
    return selects[0] if len(selects) == 1 else sa.union(*selects)


def _driving(lookup: Any) -> Any:
    """The special parameter whose SQL is ``key IN (lookup)``: it can also drive a search (``search.driven_pks``)."""

    def sql(c: Any, key: Any) -> Any:
        return key.in_(lookup(c))

    sql.drives = True  # type: ignore[attr-defined]
    sql.lookup = lookup  # type: ignore[attr-defined]
    return sql


def _near_lookup(c: Any) -> Any:
    selects = []
    for value in c.values:
        parts = value.split("|")
        try:
            lat0, lon0 = float(parts[0]), float(parts[1])
        except (ValueError, IndexError):
            raise bad_request(
                f"near takes latitude|longitude|distance|units, not {value!r}", expression="near"
            ) from None
        if not (-90 <= lat0 <= 90 and -180 <= lon0 <= 180):
            raise bad_request(
                "near: latitude must be within -90..90 and longitude -180..180", expression="near"
            )
        km = _distance(parts[2:], "near")
        selects.append(_within(lat0, lon0, math.cos(math.radians(lat0)), km))
    return _union(selects)


def _near_postalcode_lookup(c: Any) -> Any:
    selects = []
    for value in c.values:
        parts = value.split("|")
        code = normalize_string(parts[0])
        if not code:
            raise bad_request(
                "near-postalcode takes postal code|distance|units", expression="near-postalcode"
            )
        km = _distance(parts[1:], "near-postalcode")
        zips, pts = INDEX_TABLES["idx_string"].alias(), INDEX_TABLES["idx_number"].alias()
        members = sa.select(zips.c.res_pk).where(
            zips.c.res_type == "Location", zips.c.param == "address-postalcode", zips.c.value == code
        )

        def centroid(param: str, pts: Any = pts, members: Any = members) -> Any:
            return (
                sa.select(sa.func.avg(pts.c.value))
                .where(pts.c.res_type == "Location", pts.c.param == param, pts.c.res_pk.in_(members))
                .scalar_subquery()
            )

        lat0, lon0 = centroid(_LAT), centroid(_LON)
        selects.append(_within(lat0, lon0, sa.func.cos(sa.func.radians(lat0)), km))
    return _union(selects)


def _special(rtype: str, code: str, expression: str, sql: Any) -> SearchParam:
    return SearchParam(
        resource_type=rtype,
        code=code,
        type="special",
        expression=expression,
        url=f"{MECR_PARAM_BASE}{rtype}-{code}",
        special=sql,
        roots=frozenset(),
    )


@cache
def mecr_params() -> tuple[SearchParam, ...]:
    """mECR's own search parameters (module docstring), compiled."""
    hs = "HealthcareService"
    keyword = replace(
        _compile(_raw(hs, "keyword-word", "token", "HealthcareService.name")),
        internal=True,
        extract=_keyword_rows,
        roots=frozenset(
            {"name", "comment", "category", "type", "specialty", "program", "providedBy", "extension"}
        ),
    )
    window = replace(
        _compile(_raw(hs, "available-window", "date", "HealthcareService.availableTime")),
        extract=_windows,
        internal=True,
    )
    min_age = replace(
        _compile(_raw(hs, "min-age", "number", "HealthcareService.eligibility.extension")),
        extract=_age_bound("low"),
        roots=frozenset({"eligibility"}),
    )
    max_age = replace(
        _compile(_raw(hs, "max-age", "number", "HealthcareService.eligibility.extension")),
        extract=_age_bound("high"),
        roots=frozenset({"eligibility"}),
    )
    category = replace(
        _compile(_raw(hs, "category", "token", "HealthcareService.category")), stored_as=("service-category",)
    )
    return (
        category,
        keyword,
        window,
        min_age,
        max_age,
        _compile(_raw(hs, "communication", "token", "HealthcareService.communication")),
        _compile(_raw(hs, "eligibility", "token", "HealthcareService.eligibility.code")),
        _special(
            hs,
            "available-day",
            "HealthcareService.availableTime.daysOfWeek (mon ... sun)",
            _available_day_sql,
        ),
        _special(
            hs,
            "keyword",
            "words of HealthcareService.name | comment | category | type | program | "
            "providedBy.display (whole words, singular or plural)",
            _driving(_keyword_lookup),
        ),
        _special(hs, "age", "HealthcareService.eligibility (age range includes the value)", _age_sql),
        _special(hs, "open-at", "HealthcareService.availableTime (open at day-HH:MM)", _open_at_sql),
        replace(_compile(_raw("Location", _LAT, "number", "Location.position.latitude")), internal=True),
        replace(_compile(_raw("Location", _LON, "number", "Location.position.longitude")), internal=True),
        _special(
            "Location",
            "near",
            "Location.position (latitude|longitude|distance|units)",
            _driving(_near_lookup),
        ),
        _special(
            "Location",
            "near-postalcode",
            "Location.position near the centroid of Location.address.postalCode",
            _driving(_near_postalcode_lookup),
        ),
    )
