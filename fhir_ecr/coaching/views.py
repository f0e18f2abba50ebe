"""The coaching service's reads: the coaching summary, the patient page's overview, the caseload's glance and the
run chart, each a view computed from the patient's data and cached per patient data version (coaching.cache).

Where the Observations come from is an :class:`~fhir_ecr.coaching.derived.reads.ObservationSource`: the derived
tables when they are kept (``install_derived``) and complete, else the search index; the results are the same
(tests/coaching/test_derived.py), the derived tables only make the first view after a write cheaper.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from fhir_ecr.coaching import resources as res
from fhir_ecr.coaching.adherence import ledger_adherence
from fhir_ecr.coaching.base import (
    _CHECKIN_ELEMENTS,
    _CLOSED_GOALS,
    _FIRST_SINCE,
    _READING_ELEMENTS,
    MAX_CHART_DAYS,
    CoachingBase,
    _core_errors,
    _search_all,
)
from fhir_ecr.coaching.cache import ViewCache, view_cache
from fhir_ecr.coaching.derived import kept
from fhir_ecr.coaching.derived.maintain import derived_ready
from fhir_ecr.coaching.derived.reads import DerivedSource, IndexSource, ObservationSource
from fhir_ecr.coaching.derived.reads import elements as _elements
from fhir_ecr.coaching.schedule import CheckIn, ledger
from fhir_ecr.coaching.streaks import ledger_streaks
from fhir_ecr.coaching.view_shapes import (
    _analysis_dict,
    _baseline_dict,
    _codings,
    _progress_dict,
    _run_chart,
    _signals_dict,
)
from fhir_ecr.outcomes import FhirError, bad_request
from fhir_ecr.store.repository import Stored, UnitOfWork

__all__ = ["CoachingViews"]

_INDEX = IndexSource()
_DERIVED = DerivedSource()


class CoachingViews(CoachingBase):
    """The read side of :class:`~fhir_ecr.coaching.service.CoachingService`."""

    # -- reads -------------------------------------------------------------------------------------------
    #
    # Each read is a view computed from the patient's data, cached per patient data version (coaching.cache):
    # ``_cached_view`` authorises the caller exactly as the uncached read would (the Patient is read through
    # the caller's repository, the guard is asked about every type the view reads), then uses the entry for
    # (view, patient, data version, local today, service parameters) or computes it in the same unit of work,
    # reading the version before the data, so what is cached is never older than its version.

    def _params_key(self) -> Hashable:
        key = (
            self.default_tz,
            self.progress_policy,
            self.streak_policy,
            self.adherence_policy,
            self.windows,
            self.run_chart_days,
            self.history_days,
        )
        try:
            hash(key)
        except TypeError:  # a policy with unhashable fields: its repr names every setting
            return repr(key)
        return key

    def _cached_view(
        self,
        view: str,
        patient_id: str,
        args: Hashable,
        types: Sequence[str],
        compute: Callable[[UnitOfWork, str, date], tuple[Any, ...]],
    ) -> Any:
        """``compute(uow, tz, today) -> (value, [(type, id) read][, {(other view, its args): its value}])``
        through the view cache and, for the kept views, the ``kept_view`` table (the optional third item: views
        computed along the way, cached and kept as well)."""
        cache = view_cache(self.repo.engine) if self.use_cache else None
        keeping = cache is not None and view in kept.KEPT_VIEWS
        with self.repo.unit(write=False) as uow:
            version = uow.patient_version(patient_id)
            _, tz = self._patient(uow, patient_id)  # the caller may read this patient (404/410/403 otherwise)
            today = self.today(tz)
            guard = self.repo.guard
            if guard is not None:
                for rtype in types:  # scope checks, in the order the computation searches
                    guard.require(rtype, "s")
                conf = guard.confinement()
                if conf is not None and conf.patient_id != patient_id:
                    cache = None  # confined to another record: what they see is not the patient's view
                    keeping = False
            key = (view, patient_id, version, today, tz, self._params_key(), args)
            stamp = self._stamp(version, today, tz, args)
            hit = cache.get(key) if cache is not None else None
            if hit is None and keeping:
                hit = self._kept_hit(
                    uow, view, [patient_id], {patient_id: stamp}, cache, {patient_id: key}
                ).get(patient_id)
            if hit is not None:
                value, refs = hit
                if guard is not None:  # the audit trail names what the view was computed from
                    guard.after_read(
                        [Stored(t, i, 0, 0, False, {"resourceType": t, "id": i}) for t, i in refs], patient_id
                    )
                return value
            value, refs, *more = compute(uow, tz, today)
        if cache is not None:
            others = more[0] if more else {}
            cache.put(key, (value, refs))
            for (other, other_args), other_value in others.items():
                cache.put((other, *key[1:-1], other_args), (other_value, refs))
            views = {(view, args): value, **others}  # what the views kept for every process
            kept.keep(
                self.repo.engine,
                [
                    (patient_id, name, self._stamp(version, today, tz, a), (v, refs))
                    for (name, a), v in views.items()
                    if name in kept.KEPT_VIEWS
                ],
            )
        return value

    def _stamp(self, version: int, today: date, tz: str, args: Hashable) -> kept.Stamp:
        """What a kept view holds for: the data version, the local day and zone, the parameters and arguments."""
        return kept.Stamp(version, today, tz, kept.params_digest((self._params_key(), args)))

    def _kept_hit(
        self,
        uow: UnitOfWork,
        view: str,
        patient_ids: Sequence[str],
        stamps: Mapping[str, kept.Stamp],
        cache: ViewCache | None = None,
        keys: Mapping[str, Hashable] | None = None,
    ) -> dict[str, tuple[Any, list[tuple[str, str]]]]:
        """The kept ``(value, refs)`` of ``view`` for each patient whose kept stamp is exactly ``stamps[pid]``;
        each one also goes into ``cache`` under ``keys[pid]`` (as read: it is pickled already)."""
        out: dict[str, tuple[Any, list[tuple[str, str]]]] = {}
        for pid, (stamp, blob) in kept.load(uow.conn, view, patient_ids).items():
            if stamp != stamps.get(pid):
                continue
            hit = kept.decode(blob)
            if isinstance(hit, tuple) and len(hit) == 2:
                out[pid] = hit
                if cache is not None and keys is not None:
                    cache.put_blob(keys[pid], blob)
        return out

    def coaching_summary(self, patient_id: str) -> dict[str, Any]:
        """Goals with progress and recent run-chart signals, habits with adherence and streaks (a dict)."""

        def compute(uow: UnitOfWork, tz: str, today: date) -> tuple[Any, list[tuple[str, str]]]:
            inputs = self._gather(uow, patient_id, tz, today, ())
            return self._summarize(inputs)[0], inputs.refs()

        return self._cached_view("summary", patient_id, (), _SUMMARY_TYPES, compute)  # type: ignore[no-any-return]

    def patient_overview(
        self, patient_id: str, series: Sequence[tuple[str, str, str | None]] = ()
    ) -> dict[str, Any]:
        """What the coach's patient page shows, from one read of the patient's data: ``summary`` (as
        :meth:`coaching_summary`), ``goals`` (the Goal resources), ``goalSeries`` (goal id -> the daily
        ``(date, value)`` measurements of the run-chart window, in the goal's unit), ``series`` (for each
        ``(system, code, unit)`` asked for, keyed ``"system|code"``: its daily measurements over the same window)
        and ``runChart`` (``"system|code"`` -> :meth:`run_chart` over the default window, for every goal measure
        and every series with points)."""
        wanted = tuple((s, c, u) for s, c, u in series)

        # (value, refs, the other views computed on the way)
        def compute(uow: UnitOfWork, tz: str, today: date) -> Any:
            inputs = self._gather(uow, patient_id, tz, today, [(s, c) for s, c, _ in wanted])
            summary, goal_series = self._summarize(inputs)
            start = today - timedelta(days=self.run_chart_days - 1)
            out_series: dict[str, list[tuple[date, float]]] = {}
            for system, code, unit in wanted:
                obs = [o for o in inputs.readings if (system, code) in _codings(o)]
                out_series[f"{system}|{code}"] = [
                    (m.when, m.value)
                    for m in res.measurements_by_day(obs, tz, unit)
                    if start <= m.when <= today
                ]
            charts: dict[str, Any] = {}
            measures = [
                m
                for i in inputs.infos
                if i.target is not None and i.lifecycle not in _CLOSED_GOALS
                for m in i.measure
            ]
            for system, code in [*measures, *((s, c) for s, c, _ in wanted if out_series[f"{s}|{c}"])]:
                if f"{system}|{code}" not in charts:
                    charts[f"{system}|{code}"] = self._chart(
                        patient_id,
                        [(system, code)],
                        start,
                        today,
                        tz,
                        inputs.readings,
                        inputs.infos,
                        inputs.plans,
                    )
            value = {
                "summary": summary,
                "goals": inputs.goals,
                "goalSeries": goal_series,
                "series": out_series,
                "runChart": charts,
            }
            return (
                value,
                inputs.refs(),
                {("summary", ()): summary, ("glance", ()): self._glance(uow, inputs, summary, goal_series)},
            )

        return self._cached_view("overview", patient_id, wanted, _SUMMARY_TYPES, compute)  # type: ignore[no-any-return]

    # -- the caseload's view: the same computation as the page's, less the trends and run charts ------------------

    def patient_glance(self, patient_id: str) -> dict[str, Any]:
        """What the caseload shows of a patient, from the same computation as :meth:`patient_overview` (whose
        cache entry fills this one, and the other way round for the summary): ``summary``, ``goals`` (the Goal
        resources), ``goalSeries`` (goal id -> the daily measurements of the run-chart window, in the goal's
        unit: the patient page's sparkline points), ``lastData`` (the local day of the patient's latest
        Observation of any kind up to today — a wearable reading or a check-in — or None) and ``refs`` (the
        ``(type, id)`` of the Goals and CarePlans it was computed from, for a caller's own audit trail)."""
        return self._cached_view(  # type: ignore[no-any-return]
            "glance",
            patient_id,
            (),
            _GLANCE_TYPES,
            lambda uow, tz, today: self._glance_compute(uow, patient_id, tz, today),
        )

    def patient_glances(self, patient_ids: Sequence[str]) -> dict[str, dict[str, Any] | FhirError]:
        """:meth:`patient_glance` of many patients in one read transaction (the caseload), with the same access
        checks, cache entries and kept views. A patient the caller may not see is left out; a patient whose data
        cannot be computed (a malformed Goal, say) maps to the :class:`FhirError`, so one record never hides the
        rest."""
        cache = view_cache(self.repo.engine) if self.use_cache else None
        guard = self.repo.guard
        params = self._params_key()
        digest = self._stamp(0, date.min, "", ()).params  # the same for every patient of the batch
        out: dict[str, dict[str, Any] | FhirError] = {}
        fresh: list[tuple[tuple[Any, ...], kept.Stamp, Any, list[tuple[str, str]], dict[Any, Any]]] = []
        with self.repo.unit(write=False) as uow:
            # versions first, then the data they guard (as _cached_view)
            versions = uow.patient_versions(patient_ids)
            patients: dict[str, dict[str, Any]] = {}
            ids = list(versions)
            for i in range(0, len(ids), 200):
                for p in _search_all(uow, "Patient", [("_id", ",".join(ids[i : i + 200]))]):
                    patients[str(p.get("id"))] = p
            confined = None
            if guard is not None:
                for rtype in _GLANCE_TYPES:
                    guard.require(rtype, "s")
                conf = guard.confinement()
                confined = conf.patient_id if conf is not None else None
            wanted: dict[str, tuple[tuple[Any, ...], kept.Stamp]] = {}
            for pid in ids:
                content = patients.get(pid)
                if content is None:
                    continue
                tz = res.patient_time_zone(content, self.default_tz)
                today = self.today(tz)
                wanted[pid] = (
                    ("glance", pid, versions[pid], today, tz, params, ()),
                    kept.Stamp(versions[pid], today, tz, digest),
                )
            usable = {pid for pid in wanted if cache is not None and confined in (None, pid)}
            hits: dict[str, tuple[Any, list[tuple[str, str]]]] = {}
            for pid in usable:
                hit = cache.get(wanted[pid][0]) if cache is not None else None
                if hit is not None:
                    hits[pid] = hit
            missing = [pid for pid in wanted if pid in usable and pid not in hits]
            if missing:  # the kept views of the rest: one statement per 500 patients
                hits.update(
                    self._kept_hit(
                        uow,
                        "glance",
                        missing,
                        {pid: wanted[pid][1] for pid in missing},
                        cache,
                        {pid: wanted[pid][0] for pid in missing},
                    )
                )
            for pid, (key, stamp) in wanted.items():
                hit = hits.get(pid)
                if hit is not None:
                    value, refs = hit
                    if guard is not None:
                        guard.after_read(
                            [Stored(t, i, 0, 0, False, {"resourceType": t, "id": i}) for t, i in refs], pid
                        )
                    out[pid] = value
                    continue
                try:
                    value, refs, more = self._glance_compute(uow, pid, stamp.tz, stamp.local_day)
                except FhirError as exc:
                    out[pid] = exc
                    continue
                out[pid] = value
                if pid in usable:
                    fresh.append((key, stamp, value, refs, more))
        if cache is not None and fresh:
            rows: list[tuple[str, str, kept.Stamp, Any]] = []
            for key, stamp, value, refs, more in fresh:
                cache.put(key, (value, refs))
                rows.append((key[1], "glance", stamp, (value, refs)))
                for (other, other_args), other_value in more.items():
                    cache.put((other, *key[1:-1], other_args), (other_value, refs))
                    if other in kept.KEPT_VIEWS:
                        other_stamp = dataclasses.replace(
                            stamp, params=self._stamp(0, stamp.local_day, stamp.tz, other_args).params
                        )
                        rows.append((key[1], other, other_stamp, (other_value, refs)))
            kept.keep(self.repo.engine, rows)
        return out

    def refresh_kept(
        self,
        budget_seconds: float | None = None,
        batch: int = 50,
        overview_series: Sequence[tuple[str, str, str | None]] | None = None,
    ) -> tuple[int, int]:
        """Recompute and keep the glances and summaries — and with ``overview_series`` the patient page's
        overview of those series — whose kept stamp no longer holds (their data changed, or their local day did),
        those whose data changed first, ``batch`` patients per unit of work, until none is left or
        ``budget_seconds`` ran out (one batch at least); the kept views of deleted patients are dropped. For the
        background job (an unguarded repository). Returns (patients refreshed, patients still stale)."""
        started = time.monotonic()
        kept.forget_gone(self.repo.engine)
        with self.repo.unit(write=False) as uow:
            todo = kept.stale(uow.conn, "glance", self.today, self._stamp(0, date.min, "", ()).params)
        done = 0
        for i in range(0, len(todo), batch):
            chunk = todo[i : i + batch]
            if overview_series is None:
                self.patient_glances(chunk)
            else:
                for pid in chunk:  # the page's overview keeps the glance and the summary with it
                    try:
                        self.patient_overview(pid, overview_series)
                    except FhirError:
                        continue  # a record that cannot be computed: its views are computed (and fail) when read
            done += len(chunk)
            if budget_seconds is not None and time.monotonic() - started >= budget_seconds:
                break  # at least one batch a run, so every run makes progress
        return done, len(todo) - done

    def _glance_compute(
        self, uow: UnitOfWork, patient_id: str, tz: str, today: date
    ) -> tuple[dict[str, Any], list[tuple[str, str]], dict[Any, Any]]:
        inputs = self._gather(uow, patient_id, tz, today, ())
        summary, goal_series = self._summarize(inputs)
        return self._glance(uow, inputs, summary, goal_series), inputs.refs(), {("summary", ()): summary}

    def _glance(
        self,
        uow: UnitOfWork,
        inputs: _Inputs,
        summary: dict[str, Any],
        goal_series: dict[str, list[tuple[date, float]]],
    ) -> dict[str, Any]:
        latest = self._source(uow, inputs.patient_id).latest(
            uow, inputs.patient_id, inputs.today, ["effectiveDateTime", "effectiveInstant", "effectivePeriod"]
        )
        last = res.effective_local_date(latest, inputs.tz) if latest is not None else None
        return {
            "summary": summary,
            "goals": inputs.goals,
            "goalSeries": goal_series,
            "lastData": min(last, inputs.today) if last is not None else None,
            "refs": inputs.refs(),
        }

    def _source(self, uow: UnitOfWork, patient_id: str) -> ObservationSource:
        """The derived tables when they are kept and complete and the caller sees this patient's record whole
        (not confined to another one), else the search index."""
        guard = self.repo.guard
        conf = guard.confinement() if guard is not None else None
        if (conf is None or conf.patient_id == patient_id) and derived_ready(self.repo, uow):
            return _DERIVED
        return _INDEX

    def _gather(
        self, uow: UnitOfWork, patient_id: str, tz: str, today: date, extra_codes: Sequence[tuple[str, str]]
    ) -> _Inputs:
        """Everything the summary (and the page) is computed from, read in one unit of work."""
        subject = ("patient", f"Patient/{patient_id}")
        goals = _search_all(uow, "Goal", [subject])
        plans = _search_all(uow, "CarePlan", [subject, ("category", f"{res.MECR_CODES}|habit-plan")])
        source = self._source(uow, patient_id)
        # Bounded reads (the p95 target): check-ins of the last history_days days; readings of the trend and
        # run-chart windows plus the first baseline_points days' readings for the baseline.
        since = today - timedelta(days=self.history_days - 1)
        by_habit = self._checkins(uow, source, patient_id, since)
        with _core_errors():
            infos = [res.goal_info(g) for g in goals]
        measures = sorted(
            {m for i in infos if i.target is not None and i.lifecycle not in _CLOSED_GOALS for m in i.measure}
        )
        codes = sorted({*measures, *extra_codes})
        readings: list[dict[str, Any]] = []
        if codes:
            recent_days = max(self.run_chart_days, self.progress_policy.trend_window_days) + 1
            readings = source.readings(
                uow,
                patient_id,
                codes,
                [f"ge{(today - timedelta(days=recent_days)).isoformat()}"],
                _READING_ELEMENTS,
            )
        if measures:
            # the readings of each measure's first days (the goal baseline): its first 4 * baseline_points by date
            readings += source.first_readings(
                uow, patient_id, measures, self.progress_policy.baseline_points * 4, _READING_ELEMENTS
            )
        # Goals without comparator: their start, and their first readings since (the direction's baseline).
        starts: dict[str, date] = {}
        for info in infos:
            if info.inferred_direction and info.lifecycle not in _CLOSED_GOALS:
                start = self._goal_start(uow, info, tz)
                if start is not None:
                    starts[info.id] = start
                    readings += source.first_since(
                        uow, patient_id, info.measure, start, _FIRST_SINCE, _READING_ELEMENTS
                    )
        return _Inputs(patient_id, tz, today, goals, infos, plans, by_habit, readings, starts)

    def _summarize(self, inputs: _Inputs) -> tuple[dict[str, Any], dict[str, list[tuple[date, float]]]]:
        """The summary, and each measured goal's daily measurements of the run-chart window."""
        tz, today = inputs.tz, inputs.today
        with _core_errors():
            habits = [
                h
                for p in inputs.plans
                if p.get("status") not in ("revoked", "entered-in-error")
                for h in res.habits_of_plan(p)
            ]
            notes = [n for p in inputs.plans for n in res.pdsa_notes(p, res.habits_of_plan(p))]
        by_code: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for obs in inputs.readings:
            for c in (obs.get("code") or {}).get("coding", []) or []:
                by_code.setdefault((c.get("system"), c.get("code")), []).append(obs)
        goal_out = []
        goal_series: dict[str, list[tuple[date, float]]] = {}
        for info in inputs.infos:
            if info.lifecycle in _CLOSED_GOALS:
                continue
            item: dict[str, Any] = {
                "reference": {"reference": f"Goal/{info.id}"},
                "description": info.description,
                "lifecycleStatus": info.lifecycle,
                "storedAchievementStatus": info.achievement,
            }
            # A reading coded with two of the goal's codings counts once.
            obs_for_goal = list({id(o): o for m in info.measure for o in by_code.get(m, [])}.values())
            result = self._progress(info, obs_for_goal, tz, today, inputs.starts.get(info.id))
            if result is not None:
                progress, series = result
                item.update(_progress_dict(progress, info))
                recent = [m for m in series if m.when > today - timedelta(days=self.run_chart_days)]
                goal_series[info.id] = [(m.when, m.value) for m in recent]
                goal_notes = [n for n in notes if n.goal_id == info.id]
                chart = _run_chart([m.when for m in recent], [m.value for m in recent], goal_notes)
                if chart is not None:
                    item["runChart"] = _signals_dict(chart)
            goal_out.append(item)
        habit_out = []
        for habit in habits:
            cis = inputs.by_habit.get((habit.plan_id, habit.habit_id), [])
            with _core_errors():
                # One ledger of the habit's whole life serves every adherence window and the streaks.
                led = ledger(habit.schedule, cis, habit.pauses, today=today)
                windows = {d: ledger_adherence(led, d, self.adherence_policy) for d in self.windows}
                streak = ledger_streaks(led, self.streak_policy)
            last = max((c.day for c in cis), default=None)
            habit_out.append(
                {
                    "plan": {"reference": f"CarePlan/{habit.plan_id}"},
                    "habitId": habit.habit_id,
                    "title": habit.title,
                    "status": habit.status,
                    "statusReason": habit.status_reason,
                    "servesGoal": {"reference": f"Goal/{habit.goal_id}"} if habit.goal_id else None,
                    "schedule": habit.schedule.kind.value,
                    "start": habit.start,
                    "end": habit.end,
                    "pause": [
                        {"start": p.start, "end": p.end, "reason": p.reason or None} for p in habit.pauses
                    ],
                    "adherence": [
                        {
                            "days": d,
                            "rate": a.rate,
                            "scheduled": a.scheduled,
                            "earned": a.earned,
                            "done": a.done,
                            "partly": a.partly,
                            "missed": a.missed,
                            "paused": a.paused,
                        }
                        for d, a in windows.items()
                    ],
                    "streak": {
                        "unit": streak.unit.value,
                        "current": streak.current_length,
                        "currentStart": streak.current.start if streak.current else None,
                        "repaired": list(streak.current.repaired) if streak.current else [],
                        "best": streak.best_length,
                    },
                    "lastCheckIn": last,
                }
            )
        summary = {
            "patient": {"reference": f"Patient/{inputs.patient_id}"},
            "today": today,
            "timeZone": tz,
            "goal": goal_out,
            "habit": habit_out,
        }
        return summary, goal_series

    def _checkins(
        self, uow: UnitOfWork, source: ObservationSource, patient_id: str, since: date
    ) -> dict[tuple[str, str], list[CheckIn]]:
        """The patient's check-ins dated ``since`` or later by (plan id, habit id), from their index tokens (a
        check-in's identifier, result and status: res.checkins_from_tokens); only check-ins without a check-in
        identifier are read as documents (a few elements each)."""
        by_habit, unkeyed = res.checkins_from_tokens(source.checkin_rows(uow, patient_id, since))
        for i in range(0, len(unkeyed), 200):
            ids = ",".join(unkeyed[i : i + 200])
            for obs in _elements(uow, "Observation", [("_id", ids)], _CHECKIN_ELEMENTS):
                parsed = res.checkin_from_observation(obs)
                if parsed is not None:
                    by_habit.setdefault((parsed[0], parsed[1]), []).append(parsed[2])
        return by_habit

    def run_chart(
        self,
        patient_id: str,
        codings: Sequence[tuple[str, str]],
        start: date | None = None,
        end: date | None = None,
    ) -> dict[str, Any]:
        """The daily series of a measure for a patient between two local dates, its median and signals,
        with the PDSA notes of habits serving goals on that measure as phase boundaries."""
        wanted = tuple((s, c) for s, c in codings)

        def compute(uow: UnitOfWork, tz: str, today: date) -> tuple[Any, list[tuple[str, str]]]:
            last = end or today
            first = start or last - timedelta(days=self.run_chart_days - 1)
            if first > last:
                raise bad_request(f"from ({first}) is after to ({last})", "from")
            if (last - first).days >= MAX_CHART_DAYS:
                raise bad_request(
                    f"a run chart covers at most {MAX_CHART_DAYS} days, not {first} to {last}", "from"
                )
            subject = ("patient", f"Patient/{patient_id}")
            # A day padded on both sides: instants are filtered to the local day after conversion.
            readings = self._source(uow, patient_id).readings(
                uow,
                patient_id,
                wanted,
                [
                    f"ge{(first - timedelta(days=1)).isoformat()}",
                    f"le{(last + timedelta(days=1)).isoformat()}",
                ],
                _READING_ELEMENTS,
            )
            goals = _search_all(uow, "Goal", [subject])
            plans = _search_all(uow, "CarePlan", [subject, ("category", f"{res.MECR_CODES}|habit-plan")])
            with _core_errors():
                infos = [res.goal_info(g) for g in goals]
            value = self._chart(patient_id, wanted, first, last, tz, readings, infos, plans)
            return value, [
                *(("Goal", str(g.get("id"))) for g in goals),
                *(("CarePlan", str(p.get("id"))) for p in plans),
            ]

        chart: dict[str, Any] = self._cached_view(
            "run-chart", patient_id, (wanted, start, end), ("Observation", "Goal", "CarePlan"), compute
        )
        return chart

    def _chart(
        self,
        patient_id: str,
        codings: Sequence[tuple[str, str]],
        start: date,
        end: date,
        tz: str,
        readings: Sequence[Mapping[str, Any]],
        infos: Sequence[res.GoalInfo],
        plans: Sequence[Mapping[str, Any]],
    ) -> dict[str, Any]:
        """:meth:`run_chart` over readings already read (those of other codes are left out here)."""
        wanted = set(codings)
        readings = [o for o in readings if wanted & _codings(o)]
        with _core_errors():
            goal_ids = {i.id for i in infos if set(i.measure) & wanted}
            unit = next((i.unit for i in infos if i.id in goal_ids and i.unit), None)
            if unit is None:
                unit = next(
                    (
                        (o.get("valueQuantity") or {}).get("code")
                        for o in readings
                        if (o.get("valueQuantity") or {}).get("code")
                    ),
                    None,
                )
            notes = [
                n
                for p in plans
                for n in res.pdsa_notes(p, res.habits_of_plan(p))
                if n.goal_id in goal_ids and start <= n.day <= end
            ]
            series = [m for m in res.measurements_by_day(readings, tz, unit) if start <= m.when <= end]
        chart = _run_chart([m.when for m in series], [m.value for m in series], notes)
        out: dict[str, Any] = {
            "patient": {"reference": f"Patient/{patient_id}"},
            "code": [{"system": s, "code": c} for s, c in codings],
            "from": start,
            "to": end,
            "unit": unit,
            "timeZone": tz,
        }
        if chart is None:
            out["point"] = []
            return out
        analysis, split_notes = chart
        overall = analysis.overall
        shift, astro = set(overall.shift_points), set(overall.astronomical_points)
        out["median"] = overall.median
        out["point"] = [
            {"date": m.when, "value": m.value, "shift": i in shift, "astronomical": i in astro}
            for i, m in enumerate(series)
        ]
        out["analysis"] = _analysis_dict(overall, series_dates=[m.when for m in series])
        out["baseline"] = _baseline_dict(analysis)
        out["phase"] = [_analysis_dict(p, series_dates=[m.when for m in series]) for p in analysis.phases]
        out["annotation"] = [
            {
                "date": n.day,
                "text": n.text,
                "title": n.title,
                "habitId": n.habit_id,
                "plan": {"reference": f"CarePlan/{n.plan_id}"},
            }
            for n in split_notes
        ]
        return out


_SUMMARY_TYPES = ("Goal", "CarePlan", "Observation")  # what the summary searches, in that order
_GLANCE_TYPES = ("Patient", *_SUMMARY_TYPES)  # the caseload's batch also searches the Patients


@dataclass
class _Inputs:
    """What a patient's summary (and page) is computed from, read in one unit of work."""

    patient_id: str
    tz: str
    today: date
    goals: list[dict[str, Any]]
    infos: list[res.GoalInfo]
    plans: list[dict[str, Any]]
    by_habit: dict[tuple[str, str], list[CheckIn]]
    readings: list[dict[str, Any]]
    starts: dict[str, date] = field(
        default_factory=dict
    )  # goal id -> its start, for goals without comparator

    def refs(self) -> list[tuple[str, str]]:
        """The resources the view names (for the audit trail of a cache hit)."""
        return [
            *(("Goal", str(g.get("id"))) for g in self.goals),
            *(("CarePlan", str(p.get("id"))) for p in self.plans),
        ]
