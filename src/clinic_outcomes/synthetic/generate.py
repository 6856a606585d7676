"""A synthetic clinic network's nightly EMR exports, seeded and byte-for-byte reproducible.

`generate(out)` writes one drop folder per day (`out/YYYY-MM-DD/`) in the format of
docs/exports.md and an `out/settings.toml` naming each clinic's time zone.
Every phenomenon the rules of rules.md measure is planted on purpose, at rates
documented in docs/synthetic-data.md, and counted exactly in the returned
`GenerationSummary`, so tests can compare what the pipeline finds with what was put in.

How it is built, in order (all vectorised; the only Python loops run over zones,
session ranks within a patient, drops and files — never over rows):

1. clinics, clinicians, patients (with fake direct identifiers to be de-identified);
2. plans (episodes of care) with an archetype each: full course, abandoned,
   discharged early, cancelled; needling-only or without needling;
3. sessions on fixed weekly patterns (gaps of at least two days, so only the
   immediately preceding needling session can be under 72 hours away);
4. needle sites drawn from two disjoint pools per plan: a session close (< 72 h) to the
   previous needling session switches pool, unless it is a planted re-treatment;
5. pain: an underlying per-plan trend, immediate relief after needling, and relief that
   lasts a drawn duration (longer with heat, then ice, then none);
6. check-ins between sessions that observe that same pain curve;
7. record versions (corrections, discharges, re-sends) spread over the drops, then
   the files, with every allowed variation of the CSV dialect.

The clean output is strictly valid; `dirty=True` adds malformed rows and files and
records each one in the summary.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import numpy as np
import polars as pl

from clinic_outcomes.synthetic.files import (
    _therapy_text,
    _write_drops,
)
from clinic_outcomes.synthetic.network import (
    ADVERSE,
    AFTERCARE,
    CHANNELS,
    CHRONICITY,
    CONDITIONS,
    DAY,
    DAILY_DROPS,
    DEFAULT_END_DATE,
    DEMO_DAYS,
    DEMO_PATIENTS,
    EPOCH,
    FAKE_NAMES,
    FAKE_PHONES,
    FAKE_POSTAL_CODES,
    FIRST_NAMES,
    GenerationSummary,
    LAST_NAMES,
    PLAN_STATUSES,
    RATES,
    ROLES,
    SESSION_STATUSES,
    SEXES,
    SIDE_TABLE,
    SITE_TABLE,
    Clinic,
    _World,
    _checkins,
    _choice,
    clinic_table,
    _format_ts,
    _ids,
    _local_to_utc,
    _lookup,
    _masked,
    _needle_spots,
    _network,
    _patient_case_mix,
    _nullable_int,
    _order_by_patient_time,
    _pain,
    _plans,
    _sessions,
    _ts_styles,
)


def generate(
    out: Path,
    *,
    patients: int = DEMO_PATIENTS,
    days: int = DEMO_DAYS,
    seed: int = 7,
    dirty: bool = False,
    end_date: dt.date | None = None,
    clinics: int | None = None,
) -> GenerationSummary:
    """Write a synthetic export (one drop folder per day up to end_date) and settings.toml into `out`.

    `clinics`: None (or len(CLINICS)) simulates the seven clinics of CLINICS; another number N >= 1 a network
    of N generated clinics (network.clinic_table)."""
    if patients < 1 or days < 7:
        raise ValueError("need at least 1 patient and 7 days")
    table = clinic_table(clinics)
    out = Path(out)
    end_date = end_date or DEFAULT_END_DATE
    first_date = end_date - dt.timedelta(days=days - 1)
    first_day = (first_date - EPOCH).days
    end_day = (end_date - EPOCH).days
    rng = np.random.default_rng([seed, 0])
    case_rng = np.random.default_rng([seed, 4])  # the case mix (R8); streams 1-3 style and dirty the files

    world = _network(rng, patients, first_day, days, table)
    world.patient_mix = _patient_case_mix(case_rng, world, patients)
    plan = _plans(rng, world, patients, case_rng)
    s = _order_by_patient_time(_sessions(rng, world, plan))
    sites, planted = _needle_spots(rng, s, plan)
    pain = _pain(rng, s, plan, patients, case_rng)
    chk = _checkins(rng, world, s, pain, plan, patients, end_day)

    frames, planted_versions, final_plan_status = _entity_frames(rng, world, plan, s, sites, pain, chk, patients, end_day)
    planted.update(planted_versions)
    frames = _initial_export(frames, days)
    planted.update(_plan_counts(plan, s, final_plan_status, world, end_day))
    planted.update(_session_counts(s, pain))
    planted["checkins_no_checkin_patients"] = int(patients - len(np.unique(chk["patient"])))

    if out.exists():
        for child in out.iterdir():
            if child.is_dir() and len(child.name) == 10 and child.name[4] == "-":
                shutil.rmtree(child)
    out.mkdir(parents=True, exist_ok=True)
    settings_path = out / "settings.toml"
    settings_path.write_text(_settings_toml(table))

    files, rows_written, bad_rows, bad_files = _write_drops(out, frames, first_date, days, seed, dirty)
    return GenerationSummary(
        out=out,
        settings_path=settings_path,
        seed=seed,
        dirty=dirty,
        first_date=first_date,
        end_date=end_date,
        drops=days if days - DAILY_DROPS <= 1 else DAILY_DROPS + 1,
        files=files,
        clinics=len(table),
        clinicians=len(world.clinician_role),
        patients=planted["patients_with_a_plan"],
        plans=len(plan["patient"]),
        sessions=len(s["patient"]),
        needle_sites=len(sites["spot_code"]),
        pain_checkins=len(chk["patient"]),
        rows_written=rows_written,
        planted=planted,
        malformed_rows=tuple(bad_rows),
        malformed_files=tuple(bad_files),
    )


RECORD_KEYS = {"sessions": "session_id", "plans": "plan_id", "pain_checkins": "checkin_id", "patients": "patient_id"}


def _initial_export(frames: dict[str, pl.DataFrame], days: int) -> dict[str, pl.DataFrame]:
    """Fold the versions of drops older than the last DAILY_DROPS days into one initial export, sent the day
    before the first nightly drop, with one version per record: the one with the latest updated_at (needle
    sites: a session's latest list). A long history then costs one drop, not one per day. The summary's
    counts of re-sent versions still count those folded away."""
    cut = days - DAILY_DROPS
    if cut <= 1:
        return frames
    out = {}
    for name, frame in frames.items():
        old = frame.filter(pl.col("_drop") < cut)
        if name == "needle_sites":
            old = old.filter(pl.col("_drop") == pl.col("_drop").max().over("session_id"))
        else:
            old = old.sort("_order", "_drop", maintain_order=True).unique(RECORD_KEYS[name], keep="last", maintain_order=True)
        old = old.with_columns(pl.lit(cut - 1).cast(frame.schema["_drop"]).alias("_drop"))
        out[name] = pl.concat([old, frame.filter(pl.col("_drop") >= cut)])
    return out


def _settings_toml(clinics: tuple[Clinic, ...]) -> str:
    lines = [
        "# Settings of the synthetic clinic network (clinic_outcomes.synthetic).",
        "# Naive timestamps in the exports are local time in these zones.",
        'timezone = "UTC"',
        "",
    ]
    for clinic in clinics:
        lines += [f"[clinics.{clinic.id}]", f'timezone = "{clinic.zone}"', f'name = "{clinic.name}"', ""]
    return "\n".join(lines)


def _plan_counts(plan, s, final_status, world: _World, end_day: int) -> dict[str, int]:
    course = plan["course"]
    window_end_day = plan["start"] + plan["weeks"] * 7  # first day after the window, relative to first_day
    as_of = end_day + 1 - world.first_day
    in_progress = (final_status == 0) & (as_of < window_end_day)
    return {
        "plans_abandoned": int((course == 1).sum()),
        "plans_discharged_early": int((course == 2).sum()),
        # a cancellation after the last drop is not in the exports: such a plan is still active there
        "plans_cancelled": int(((course == 3) & (final_status == 2)).sum()),
        "plans_needling_only": int((plan["mix"] == 1).sum()),
        "plans_without_needling": int((plan["mix"] == 2).sum()),
        "plans_in_progress_at_as_of": int(in_progress.sum()),
        "plans_without_pcp_clearance": int((plan["pcp_cleared"] == 1).sum()),
        "plans_with_own_planned_weeks": int((plan["given_weeks"] > 0).sum()),
        "plans_with_planned_sessions": int((plan["planned_sessions"] > 0).sum()),
    }


def _session_counts(s, pain) -> dict[str, int]:
    meaningful = s["needling"] & (pain["pain_before"] - pain["pain_after"] >= 2)
    out = {
        "sessions_completed": int(s["completed"].sum()),
        "sessions_cancelled": int((s["status"] == 1).sum()),
        "sessions_no_show": int((s["status"] == 2).sum()),
        "needling_sessions": int(s["needling"].sum()),
        "needling_sessions_meaningful_relief": int(meaningful.sum()),
    }
    for k, name in enumerate(ADVERSE):
        if name != "none":
            out[f"adverse_{name}"] = int((s["needling"] & (pain["adverse"] == k)).sum())
    return out


def _entity_frames(rng, world: _World, plan, s, sites, pain, chk, n_patients: int, end_day: int):
    """Every record version as a text/typed frame with the drop (day index) it is exported in."""
    first_day = world.first_day
    last_drop = end_day - first_day
    counts: dict[str, int] = {}

    # ---- patients: first sent with their first plan; some updated later
    first_plan_start = np.full(n_patients, np.iinfo(np.int64).max)
    np.minimum.at(first_plan_start, plan["patient"], plan["start"])
    has_plan = first_plan_start < np.iinfo(np.int64).max
    pid = np.flatnonzero(has_plan)
    n = len(pid)
    mrn = 3_000_000 + pid * 13 + rng.integers(0, 13, n)
    patient_mrn = np.zeros(n_patients, dtype=np.int64)
    patient_mrn[pid] = mrn
    mrn_text = _ids("MRN", patient_mrn, 7)  # the EMR patient number: a direct identifier
    # Names come in three spellings, one with a comma and one with quotes, so CSV quoting is exercised.
    fn = rng.integers(0, len(FIRST_NAMES), n)
    ln = rng.integers(0, len(LAST_NAMES), n)
    name_style = _choice(rng, n, (0.85, 0.10, 0.02, 0.03))
    full_name = np.where(name_style == 3, -1, (name_style * len(FIRST_NAMES) + fn) * len(LAST_NAMES) + ln)
    # Age and sex are case mix (R8): drawn with the plans' outcomes (network._patient_case_mix).
    mix = world.patient_mix
    dob = pl.Series((first_day - mix["age_days"][pid]).astype("datetime64[D]")).cast(pl.Date)
    dob = _masked(dob, mix["dob_recorded"][pid])
    sex = mix["sex"][pid]
    phone = np.where(rng.random(n) < 0.05, -1, rng.integers(0, 100, n))
    postal = np.where(rng.random(n) < 0.05, -1, rng.integers(0, 100, n))
    zone = world.clinic_zone[world.patient_clinic[pid]]
    local = (first_day + first_plan_start[pid]) * DAY + rng.integers(6 * 3600, 7 * 3600, n)
    updated = rng.random(n) < RATES["patient_updated"]
    later = first_plan_start[pid] + rng.integers(1, 40, n)
    updated &= later <= last_drop
    pat_local = np.r_[local, (first_day + later[updated]) * DAY + rng.integers(8 * 3600, 18 * 3600, int(updated.sum()))]
    pat_idx = np.r_[np.arange(n), np.flatnonzero(updated)]
    phone_v = np.r_[phone, rng.integers(0, 100, int(updated.sum()))]
    pat_zone = zone[pat_idx]
    patients = pl.DataFrame({
        "patient_id": mrn_text.gather(pid[pat_idx]),
        "full_name": _lookup(FAKE_NAMES, full_name[pat_idx]),
        "date_of_birth": dob.gather(pat_idx),
        "sex": _lookup(SEXES, np.where(sex == 4, -1, sex)[pat_idx]),
        "phone": _lookup(FAKE_PHONES, phone_v),
        "postal_code": _lookup(FAKE_POSTAL_CODES, postal[pat_idx]),
        "updated_at": _format_ts(pat_local, pat_zone, _ts_styles(rng, len(pat_idx)), world.zones),
        "_drop": pat_local // DAY - first_day,
        "_order": _local_to_utc(pat_local, pat_zone, world.zones),
    })
    counts["patients_updated"] = int(updated.sum())
    counts["patients_with_a_plan"] = n

    # ---- plans: created on their start date; a status change is a new version
    m = len(plan["patient"])
    plan_ids = _ids("PLN-", np.arange(m) + 1, 6)
    clinic_ids = pl.Series([clinic.id for clinic in world.clinics], dtype=pl.String)
    pzone = world.clinic_zone[plan["clinic"]]
    created = (first_day + plan["start"]) * DAY + rng.integers(6 * 3600, 7 * 3600, m)
    last_session_day = np.full(m, -1)
    ordr = np.argsort(s["day"])
    last_session_day[s["plan"][ordr]] = s["day"][ordr]
    window_end = plan["start"] + plan["weeks"] * 7
    course = plan["course"]
    change_day = np.select(
        [course == 0, course == 1, course == 2, course == 3],
        [window_end + rng.integers(0, 6, m), window_end + rng.integers(7, 22, m), np.maximum(last_session_day, plan["start"]) + rng.integers(1, 4, m), np.maximum(last_session_day, plan["start"]) + rng.integers(1, 8, m)],
    )
    new_status = np.where(course == 3, 2, 1)  # cancelled, else discharged
    changes = (change_day <= last_drop) & ~((course == 1) & (rng.random(m) < 0.5))  # half the abandoned stay active
    final_status = np.where(changes, new_status, 0)
    ver_plan = np.r_[np.arange(m), np.flatnonzero(changes)]
    ver_status = np.r_[np.zeros(m, dtype=np.int64), new_status[changes]]
    ver_local = np.r_[created, (first_day + change_day[changes]) * DAY + rng.integers(12 * 3600, 18 * 3600, int(changes.sum()))]
    ver_zone = pzone[ver_plan]
    start_date = pl.Series((first_day + plan["start"]).astype("datetime64[D]")).cast(pl.Date)
    pcp = _masked(plan["pcp_cleared"] == 0, plan["pcp_cleared"] != 2)
    plans = pl.DataFrame({
        "plan_id": plan_ids.gather(ver_plan),
        "patient_id": mrn_text.gather(plan["patient"][ver_plan]),
        "clinic_id": clinic_ids.gather(plan["clinic"][ver_plan]),
        "start_date": start_date.gather(ver_plan),
        "planned_weeks": _nullable_int(plan["given_weeks"][ver_plan], plan["given_weeks"][ver_plan] > 0),
        "planned_sessions": _nullable_int(plan["planned_sessions"][ver_plan], plan["planned_sessions"][ver_plan] > 0),
        "pcp_cleared": pcp.gather(ver_plan),
        "chronicity": _lookup(CHRONICITY, plan["chronicity"][ver_plan]),
        "status": _lookup(PLAN_STATUSES, ver_status),
        "updated_at": _format_ts(ver_local, ver_zone, _ts_styles(rng, len(ver_plan)), world.zones),
        "_drop": ver_local // DAY - first_day,
        "_order": _local_to_utc(ver_local, ver_zone, world.zones),
    })
    counts["plan_status_changes"] = int(changes.sum())

    # ---- sessions: sent the night they happen; some corrected, re-sent, or re-sent stale
    n = len(s["patient"])
    session_ids = _ids("SES-", np.arange(n) + 1, 7)
    clinician_ids = _ids("CLN-", np.arange(len(world.clinician_role)) + 1, 4)
    therapy_text = _therapy_text(s["therapy_bits"])
    condition = np.where(rng.random(n) < 0.02, -1, plan["condition"][s["plan"]])
    updated_local = s["local"] + (s["duration_min"] + rng.integers(0, 31, n)) * 60
    completed = s["completed"]
    correct_day = s["day"] + rng.integers(1, 3, n)
    can_correct = completed & (correct_day <= last_drop)
    fix_pain = can_correct & (rng.random(n) < RATES["pain_after_corrected"]) & (pain["pain_after"] >= 0)
    late_ae = can_correct & (pain["adverse"] > 0) & (rng.random(n) < RATES["adverse_event_reported_late"])
    corrected = fix_pain | late_ae
    wrong_after = np.where(pain["pain_after"] >= 5, pain["pain_after"] - 1, pain["pain_after"] + 1)
    stale = corrected & (rng.random(n) < RATES["stale_resend"]) & (correct_day + 1 <= last_drop)
    identical = ~corrected & (rng.random(n) < RATES["identical_resend"]) & (s["day"] + 1 <= last_drop)

    pb_valid = (pain["pain_before"] >= 0) & ~(completed & (rng.random(n) < 0.02))
    pa_valid = (pain["pain_after"] >= 0) & ~(completed & (rng.random(n) < 0.03))

    def session_version(idx, after_values, adverse_values, upd_local, drop):
        return pl.DataFrame({
            "session_id": session_ids.gather(idx),
            "patient_id": mrn_text.gather(s["patient"][idx]),
            "plan_id": plan_ids.gather(s["plan"][idx]),
            "clinic_id": clinic_ids.gather(s["clinic"][idx]),
            "clinician_id": clinician_ids.gather(s["clinician"][idx]),
            "clinician_role": _lookup(ROLES, world.clinician_role[s["clinician"][idx]]),
            "started_at": _format_ts(s["local"][idx], s["zone"][idx], started_styles[idx], world.zones),
            "status": _lookup(SESSION_STATUSES, s["status"][idx]),
            "therapies": therapy_text.gather(idx),
            "condition": _lookup(CONDITIONS, condition[idx]),
            "pain_before": _nullable_int(pain["pain_before"][idx], pb_valid[idx]),
            "pain_after": _nullable_int(after_values, pa_valid[idx] & (after_values >= 0)),
            "aftercare": _lookup(AFTERCARE, pain["aftercare"][idx]),
            "adverse_event": _lookup(ADVERSE, adverse_values),
            "updated_at": _format_ts(upd_local, s["zone"][idx], _ts_styles(rng, len(idx)), world.zones),
            "_drop": drop,
            "_order": _local_to_utc(upd_local, s["zone"][idx], world.zones),
        })

    started_styles = _ts_styles(rng, n)
    all_idx = np.arange(n)
    first_after = np.where(fix_pain, wrong_after, pain["pain_after"])
    first_adverse = np.where(late_ae, 0, pain["adverse"])
    first = session_version(all_idx, first_after, first_adverse, updated_local, s["day"])
    ci = np.flatnonzero(corrected)
    corr_local = (first_day + correct_day[ci]) * DAY + rng.integers(8 * 3600, 18 * 3600, len(ci))
    correction = session_version(ci, pain["pain_after"][ci], pain["adverse"][ci], corr_local, correct_day[ci])
    si = np.flatnonzero(stale)
    stale_frame = first[si].with_columns(_drop=pl.Series(correct_day[si] + 1))
    ii = np.flatnonzero(identical)
    identical_frame = first[ii].with_columns(_drop=pl.Series(s["day"][ii] + 1))
    sessions = pl.concat([first, correction, stale_frame, identical_frame])
    counts.update({
        "sessions_pain_after_corrected": int(fix_pain.sum()),
        "sessions_adverse_event_reported_late": int(late_ae.sum()),
        "sessions_corrected": int(corrected.sum()),
        "sessions_stale_version_resent": int(stale.sum()),
        "sessions_resent_unchanged": int(identical.sum()),
    })

    # ---- needle sites: sent with their session; a few session's lists re-sent whole, corrected
    row = sites["session_row"]
    resend_session = (rng.random(n) < RATES["sites_resent"]) & s["needling"] & (s["day"] + 2 <= last_drop)
    resend_day = s["day"] + rng.integers(1, 3, n)
    rs = resend_session[row]
    # The first list of such a session carries one spot too many (from the other pool) and other needle counts.
    extra_rows = np.flatnonzero(rs & (sites["j"] == 0))
    extra_spot = plan["spot_order"][sites["plan"][extra_rows], (1 - sites["parity"][extra_rows]) * 4 + 3]
    extra_cond = plan["condition"][sites["plan"][extra_rows]]
    extra_code = extra_cond * 8 + extra_spot

    def site_frame(rows, code, needles, drop):
        return pl.DataFrame({
            "session_id": session_ids.gather(row[rows]),
            "site": _lookup(SITE_TABLE, code),
            "side": _lookup(SIDE_TABLE, code),
            "needles": _nullable_int(needles, rng.random(len(rows)) >= 0.02),
            "_drop": drop,
            "_order": s["instant"][row[rows]],
        })

    all_rows = np.arange(len(row))
    first_needles = np.where(rs, np.clip(sites["needles"] + 1, 1, 6), sites["needles"])
    first_sites = site_frame(all_rows, sites["spot_code"], first_needles, s["day"][row])
    extras = site_frame(extra_rows, extra_code, np.ones(len(extra_rows), dtype=np.int64), s["day"][row[extra_rows]])
    rr = np.flatnonzero(rs)
    resent = site_frame(rr, sites["spot_code"][rr], sites["needles"][rr], resend_day[row[rr]])
    needle_sites = pl.concat([first_sites, extras, resent])
    counts["needle_site_lists_resent"] = int(resend_session.sum())
    # The final site rows are the true ones; the needles column of the final rows uses site_frame's own nulls.

    # ---- check-ins: sent the night they are recorded, a few a night late, a few re-sent
    k = len(chk["patient"])
    checkin_ids = _ids("CHK-", np.arange(k) + 1, 7)
    day = chk["local"] // DAY - first_day
    drop = np.minimum(day + (rng.random(k) < RATES["checkin_late"]), last_drop)
    again = (rng.random(k) < RATES["checkin_resent"]) & (drop + 1 <= last_drop)
    checkins = pl.DataFrame({
        "checkin_id": checkin_ids,
        "patient_id": mrn_text.gather(chk["patient"]),
        "recorded_at": _format_ts(chk["local"], chk["zone"], _ts_styles(rng, k), world.zones),
        "pain": pl.Series(chk["pain"].astype(np.int64)),
        "channel": _lookup(CHANNELS, chk["channel"]),
        "_drop": drop,
        "_order": chk["instant"],
    })
    ai = np.flatnonzero(again)
    checkins = pl.concat([checkins, checkins[ai].with_columns(_drop=pl.Series(drop[ai] + rng.integers(1, 3, len(ai))).clip(upper_bound=last_drop))])
    counts["checkins_resent"] = int(again.sum())
    counts["checkins_exported_late"] = int((drop > day).sum())

    frames = {"sessions": sessions, "needle_sites": needle_sites, "plans": plans, "pain_checkins": checkins, "patients": patients}
    return frames, counts, final_status




def main_summary_lines(summary: GenerationSummary) -> list[str]:
    """What `clinic-outcomes generate` prints."""
    p = summary.planted
    formats = ", ".join(f"{count} {fmt}" for fmt, count in summary.files.items())
    lines = [
        f"synthetic export in {summary.out} (seed {summary.seed}{', dirty' if summary.dirty else ''})",
        f"  {summary.drops} drops {summary.first_date} .. {summary.end_date}: {formats} files",
        f"  settings (clinic time zones): {summary.settings_path}",
        f"  {summary.clinics} clinics, {summary.clinicians} clinicians, {summary.patients} patients, {summary.plans} plans",
        f"  {summary.sessions} sessions ({p['sessions_completed']} completed, {p['needling_sessions']} with dry needling), "
        f"{summary.needle_sites} needle sites, {summary.pain_checkins} pain check-ins",
        f"  planted: {p['retreatment_sessions_under_72h']} re-treatments < 72 h ({p['retreatment_flags_under_72h']} spot flags), "
        f"{p['spot_pairs_exactly_72h']} spots again at exactly 72 h; {p['plans_abandoned']} abandoned, "
        f"{p['plans_discharged_early']} discharged early, {p['plans_cancelled']} cancelled, "
        f"{p['plans_in_progress_at_as_of']} in progress at {summary.end_date + dt.timedelta(days=1)}",
        f"  run it with: --exports {summary.out} --config {summary.settings_path} --as-of {summary.end_date + dt.timedelta(days=1)}",
    ]
    if summary.dirty:
        lines.append(
            f"  dirty: {len(summary.malformed_rows)} malformed rows, "
            + ", ".join(f"{f.kind} {f.path}" for f in summary.malformed_files)
        )
    return lines
