"""R8: case-mix models and adjusted outcomes per clinic and clinician (clinic_outcomes.metrics.casemix).

A simulated network is written to DuckDB (core.sessions, core.plans, core.patients, marts.plan_outcomes);
casemix_marts reads it back. Every coefficient and expected value is checked against statsmodels fitted with
a formula on the same rows, assembled here from the simulation (not through the module's SQL); the unit
intervals and funnel limits against a hand computation written with loops.

Mutants tried (each was applied alone and made the named test fail; 9 of 9 killed):
- funnel_position `>` -> `>=` (a point on a limit is outside): test_a_point_on_a_limit_is_inside;
- unit_results without G/(G-1): test_unit_values_and_intervals_match_a_hand_computation;
- deff = 1 (no design effect): test_funnel_limits_match_a_hand_computation;
- `patients >= min_patients` -> `>`: test_units_under_the_minimum_are_not_published;
- reference = least common level: test_coefficients_match_statsmodels_on_the_same_rows;
- plan_achieved_mcid over all plans (no baseline >= MCID filter): test_coefficients_match_statsmodels_...;
- sessions `pain_before >= mcid` -> `>`: test_coefficients_match_statsmodels_... (session measure);
- no separation guard (constant-outcome level kept): test_a_level_with_one_outcome_is_collapsed_and_listed;
- a plan's clinician the one with fewest sessions: test_unit_values_and_intervals_match_a_hand_computation.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf

from clinic_outcomes.metrics import casemix

MCID = 2.0
MIN_PATIENTS = 11
CLINICS = ("c_easy", "c_hard", "c_planted", "c_mid1", "c_mid2", "c_small")
T0 = dt.datetime(2026, 1, 5, 9, tzinfo=dt.timezone.utc)


def simulate(seed: int = 7, patients: int = 1400, planted_effect: float = 1.2) -> dict[str, pd.DataFrame]:
    """A network where c_hard treats chronic, low-baseline patients and c_planted does better than its case mix."""
    rng = np.random.default_rng(seed)
    clinic = rng.choice(CLINICS[:5], size=patients, p=(0.24, 0.24, 0.12, 0.2, 0.2))
    clinic[:10] = "c_small"  # ten patients: under the minimum cell
    chronic_p = np.where(clinic == "c_hard", 0.8, 0.3)
    chronicity = np.where(rng.random(patients) < chronic_p, "chronic",
                          np.where(rng.random(patients) < 0.6, "acute", "subacute")).astype(object)
    chronicity[rng.random(patients) < 0.08] = None
    sex = rng.choice(["female", "male", None], size=patients, p=(0.55, 0.4, 0.05))
    age_band = rng.choice(["30-39", "40-49", "50-59", "60-69"], size=patients)
    condition = rng.choice(["low_back_pain", "neck_pain", "shoulder_pain"], size=patients, p=(0.5, 0.3, 0.2))
    baseline = np.clip(np.where(clinic == "c_hard", rng.integers(1, 7, patients), rng.integers(3, 11, patients)), 0, 10)
    plans, sessions = [], []
    for i in range(patients):
        n_plans = 2 if rng.random() < 0.25 else 1
        for k in range(n_plans):
            plan_id = f"pl{i:05d}_{k}"
            chronic = chronicity[i] == "chronic"
            planted = clinic[i] == "c_planted"
            b = int(baseline[i]) if k == 0 else int(rng.integers(0, 11))
            change = 0.45 * b - 1.3 * chronic + planted_effect * planted + rng.normal(0, 1.3)
            change = float(np.clip(np.round(change), b - 10, b))
            plans.append({"plan_id": plan_id, "patient_key": f"pk{i:05d}", "clinic_id": clinic[i],
                          "chronicity": chronicity[i], "baseline_pain": b, "condition": condition[i],
                          "change_points": change, "achieved_mcid": change >= MCID})
            clinicians = [f"{clinic[i]}_d1", f"{clinic[i]}_d2"]
            for s in range(5):
                before = int(np.clip(b - s // 2 + rng.integers(-1, 2), 0, 10))
                logit = -0.6 + 0.15 * before - 1.0 * chronic + 0.9 * planted
                relief = int(rng.random() < 1 / (1 + np.exp(-logit))) * int(rng.integers(2, 5))
                sessions.append({
                    "session_id": f"{plan_id}_s{s}", "patient_key": f"pk{i:05d}", "plan_id": plan_id,
                    "clinic_id": clinic[i], "clinician_id": clinicians[(i + s) % 2 if s else i % 2],
                    "started_at": T0 + dt.timedelta(days=7 * s + 60 * k, hours=i % 7), "status": "completed",
                    "therapies": ["dry_needling", "manual_therapy"] if s != 4 else ["manual_therapy"],
                    "condition": condition[i], "pain_before": before, "pain_after": max(0, before - relief),
                })
    people = pd.DataFrame({"patient_key": [f"pk{i:05d}" for i in range(patients)], "sex": sex,
                           "age_band": age_band, "updated_at": T0})
    return {"plans": pd.DataFrame(plans), "sessions": pd.DataFrame(sessions), "patients": people}


def warehouse(sim: dict[str, pd.DataFrame]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    for schema in ("core", "marts"):
        con.execute(f"create schema {schema}")
    plans, sessions, people = sim["plans"], sim["sessions"], sim["patients"]
    con.register("p", plans)
    con.register("s", sessions)
    con.register("pe", people)
    con.execute("create table core.plans as select plan_id, patient_key, clinic_id, chronicity::varchar as chronicity from p")
    con.execute("""create table marts.plan_outcomes as select plan_id, baseline_pain::integer as baseline_pain,
                   condition, change_points::integer as change_points, achieved_mcid from p""")
    con.execute("""create table core.sessions as select session_id, patient_key, plan_id, clinic_id, clinician_id,
                   started_at::timestamptz as started_at, status, therapies::varchar[] as therapies, condition,
                   pain_before::integer as pain_before, pain_after::integer as pain_after from s""")
    con.execute("""create table core.patients as select patient_key, sex::varchar as sex,
                   age_band::varchar as age_band, updated_at::timestamptz as updated_at from pe""")
    return con


def reference_rows(sim: dict[str, pd.DataFrame], measure: str) -> pd.DataFrame:
    """The rows of a measure, assembled from the simulation with pandas."""
    people = sim["patients"][["patient_key", "sex", "age_band"]]
    plans = sim["plans"].merge(people, on="patient_key")
    if measure != "session_meaningful_relief":
        rows = plans if measure == "plan_change_points" else plans[plans.baseline_pain >= MCID]
        y = rows.change_points if measure == "plan_change_points" else rows.achieved_mcid.astype(float)
        return rows.assign(y=y, baseline=rows.baseline_pain)
    s = sim["sessions"]
    s = s[s.therapies.map(lambda t: "dry_needling" in t) & (s.pain_before >= MCID)]
    s = s.merge(people, on="patient_key").merge(sim["plans"][["plan_id", "chronicity"]], on="plan_id")
    return s.assign(y=((s.pain_before - s.pain_after) >= MCID).astype(float), baseline=s.pain_before)


def statsmodels_fit(rows: pd.DataFrame, measure: str):
    rows = rows.copy()
    for term in casemix.CATEGORICAL_TERMS:
        rows[term] = rows[term].fillna("not recorded")
    refs = {t: rows[t].value_counts().sort_index().idxmax() for t in casemix.CATEGORICAL_TERMS}
    rhs = " + ".join(f"C({t}, Treatment(reference='{refs[t]}'))" for t in casemix.CATEGORICAL_TERMS)
    groups = pd.factorize(rows.patient_key)[0]
    formula = f"y ~ baseline + {rhs}"
    if measure in casemix.BINARY_MEASURES:
        model = smf.glm(formula, rows, family=sm.families.Binomial())
    else:
        model = smf.ols(formula, rows)
    result = model.fit(cov_type="cluster", cov_kwds={"groups": groups})
    return rows.assign(fitted=np.asarray(result.predict(rows))), result, refs


def _statsmodels_name(term: str) -> str:
    if term == "intercept":
        return "Intercept"
    if term == "baseline_pain":
        return "baseline"
    name, level = term[:-1].split("[")
    return next(k for k in FIT_NAMES if k.startswith(f"C({name},") and k.endswith(f"[T.{level}]"))


FIT_NAMES: list[str] = []


@pytest.fixture(scope="module")
def network():
    sim = simulate()
    con = warehouse(sim)
    coefficients, adjusted = casemix.casemix_marts(con, MCID, MIN_PATIENTS)
    return sim, coefficients, adjusted


@pytest.mark.parametrize("measure", casemix.MEASURES)
def test_coefficients_match_statsmodels_on_the_same_rows(network, measure):
    sim, coefficients, _ = network
    rows, result, refs = statsmodels_fit(reference_rows(sim, measure), measure)
    FIT_NAMES[:] = list(result.params.index)
    mine = coefficients.filter(pl.col("measure") == measure)
    fitted = mine.filter(pl.col("std_error").is_not_null())
    assert fitted.height == len(result.params)
    for term, estimate, std_error in fitted.select("term", "estimate", "std_error").iter_rows():
        name = _statsmodels_name(term)
        assert estimate == pytest.approx(result.params[name], rel=1e-6, abs=1e-9), term
        assert std_error == pytest.approx(result.bse[name], rel=1e-6), term
    references = mine.filter(pl.col("note") == "reference level")
    assert sorted(references["term"].to_list()) == sorted(f"{t}[{refs[t]}]" for t in casemix.CATEGORICAL_TERMS)
    assert references["estimate"].to_list() == [0.0] * 4
    assert mine.filter(pl.col("term") == "intercept")["rows"].item() == len(rows)


@pytest.mark.parametrize("measure", casemix.MEASURES)
def test_unit_values_and_intervals_match_a_hand_computation(network, measure):
    sim, _, adjusted = network
    rows, _, _ = statsmodels_fit(reference_rows(sim, measure), measure)
    clinicians = plan_clinicians(sim) if measure != "session_meaningful_relief" else None
    mine = adjusted.filter(pl.col("measure") == measure)
    for level, column in (("clinic", "clinic_id"), ("clinician", "clinician_id")):
        by = rows if level == "clinic" or clinicians is None else rows.merge(clinicians, on="plan_id")
        for unit, part in by.groupby(column):
            published = mine.filter((pl.col("level") == level) & (pl.col("unit_id") == unit))
            g = part.patient_key.nunique()
            if g < MIN_PATIENTS:
                assert published.height == 0
                continue
            row = published.row(0, named=True)
            n = len(part)
            observed, expected = part.y.mean(), part.fitted.mean()
            cluster_ss = sum((grp.y - grp.fitted).sum() ** 2 for _, grp in part.groupby("patient_key"))
            se = (g / (g - 1) * cluster_ss) ** 0.5 / n
            assert (row["n"], row["patients"]) == (n, g)
            assert row["observed"] == pytest.approx(observed, rel=1e-12)
            assert row["expected"] == pytest.approx(expected, rel=1e-6)
            assert row["difference"] == pytest.approx(observed - expected, abs=1e-7)
            assert row["ci_low"] == pytest.approx(observed - expected - 1.959963984540054 * se, abs=1e-6)
            assert row["ci_high"] == pytest.approx(observed - expected + 1.959963984540054 * se, abs=1e-6)
            assert row["network_value"] == pytest.approx(rows.y.mean(), rel=1e-12)


def plan_clinicians(sim) -> pd.DataFrame:
    s = sim["sessions"]
    counts = s.groupby(["plan_id", "clinician_id"]).agg(n=("session_id", "size"), first=("started_at", "min"))
    counts = counts.reset_index().sort_values(["plan_id", "n", "first", "clinician_id"], ascending=[True, False, True, True])
    return counts.drop_duplicates("plan_id")[["plan_id", "clinician_id"]]


@pytest.mark.parametrize("measure", casemix.MEASURES)
def test_funnel_limits_match_a_hand_computation(network, measure):
    sim, _, adjusted = network
    rows, result, _ = statsmodels_fit(reference_rows(sim, measure), measure)
    binary = measure in casemix.BINARY_MEASURES
    rows["v"] = rows.fitted * (1 - rows.fitted) if binary else result.scale
    rows["e"] = (rows.y - rows.fitted) / np.sqrt(rows.v)
    cross = pairs = 0.0
    for _, grp in rows.groupby("patient_key"):
        e = list(grp.e)
        for i in range(len(e)):
            for j in range(len(e)):
                if i != j:
                    cross += e[i] * e[j]
                    pairs += 1
    rho = min(1.0, max(0.0, cross / pairs))
    for unit, part in rows.groupby("clinic_id"):
        if part.patient_key.nunique() < MIN_PATIENTS:
            continue
        n = len(part)
        deff = 1 + rho * (sum(len(g) ** 2 for _, g in part.groupby("patient_key")) / n - 1)
        s = (part.v.sum() * deff) ** 0.5 / n
        row = adjusted.filter((pl.col("measure") == measure) & (pl.col("level") == "clinic")
                              & (pl.col("unit_id") == unit)).row(0, named=True)
        assert row["limit_95"] == pytest.approx(1.959963984540054 * s, rel=1e-6)
        assert row["limit_998"] == pytest.approx(3.090232306167813 * s, rel=1e-6)
        d = row["difference"]
        expected = ("above_998" if d > row["limit_998"] else "below_998" if d < -row["limit_998"]
                    else "above_95" if d > row["limit_95"] else "below_95" if d < -row["limit_95"] else "inside")
        assert row["funnel"] == expected


def test_the_planted_clinic_is_above_the_998_limit_and_the_hard_case_mix_clinic_inside(network):
    sim, _, adjusted = network
    clinics = adjusted.filter(pl.col("level") == "clinic")
    for measure in ("plan_change_points", "session_meaningful_relief"):
        m = clinics.filter(pl.col("measure") == measure)
        assert m.filter(pl.col("unit_id") == "c_planted")["funnel"].item() == "above_998", measure
        hard = m.filter(pl.col("unit_id") == "c_hard").row(0, named=True)
        assert hard["funnel"] == "inside", measure
        # its raw result is the network's worst: only its case mix makes it ordinary
        assert hard["observed"] == m["observed"].min()
        assert hard["expected"] == m["expected"].min()
    mcid = clinics.filter(pl.col("measure") == "plan_achieved_mcid")
    assert mcid.filter(pl.col("unit_id") == "c_planted")["funnel"].item() in ("above_95", "above_998")
    assert mcid.filter(pl.col("unit_id") == "c_hard")["funnel"].item() == "inside"


def test_units_under_the_minimum_are_not_published(network):
    sim, _, adjusted = network
    assert "c_small" not in adjusted["unit_id"].to_list()
    assert adjusted["patients"].min() >= MIN_PATIENTS
    # 11 patients are enough: the same network with c_small grown by one patient publishes it
    sim = simulate()
    keys = sim["patients"].patient_key[10:11].tolist()
    for name in ("plans", "sessions"):
        sim[name].loc[sim[name].patient_key.isin(keys), "clinic_id"] = "c_small"
    _, adjusted = casemix.casemix_marts(warehouse(sim), MCID, MIN_PATIENTS)
    small = adjusted.filter((pl.col("unit_id") == "c_small") & (pl.col("measure") == "plan_change_points"))
    assert small["patients"].to_list() == [11]


def test_the_rows_of_each_measure(network):
    sim, coefficients, _ = network
    rows = casemix.measure_rows(warehouse(sim), MCID)
    plans, sessions = sim["plans"], sim["sessions"]
    needling = sessions[sessions.therapies.map(lambda t: "dry_needling" in t)]
    assert rows["plan_change_points"].height == len(plans)
    assert rows["plan_achieved_mcid"].height == (plans.baseline_pain >= MCID).sum() < len(plans)
    assert rows["session_meaningful_relief"].height == (needling.pain_before >= MCID).sum()
    assert (needling.pain_before == MCID).any() and (plans.baseline_pain == MCID).any()


def test_a_plans_clinician_is_the_one_of_most_of_its_sessions(network):
    sim, *_ = network
    rows = casemix.measure_rows(warehouse(sim), MCID)["plan_change_points"]
    mine = dict(zip(rows["row_id"], rows["clinician_id"]))
    theirs = plan_clinicians(sim)
    assert all(mine[p] == c for p, c in zip(theirs.plan_id, theirs.clinician_id))


def test_a_level_with_one_outcome_is_collapsed_and_listed():
    """Separation: a level whose plans all reach the MCID is folded into the reference, not fitted to infinity."""
    sim = simulate(seed=11)
    plans = sim["plans"]
    hit = plans.index[plans.condition == "shoulder_pain"]
    plans.loc[hit, "change_points"] = plans.loc[hit, "baseline_pain"].clip(lower=MCID)
    plans.loc[hit, "achieved_mcid"] = True
    plans.loc[hit, "baseline_pain"] = plans.loc[hit, "baseline_pain"].clip(lower=MCID)
    coefficients, adjusted = casemix.casemix_marts(warehouse(sim), MCID, MIN_PATIENTS)
    row = coefficients.filter((pl.col("measure") == "plan_achieved_mcid")
                              & (pl.col("term") == "condition[shoulder_pain]")).row(0, named=True)
    assert row["estimate"] == 0.0 and row["std_error"] is None
    assert "same outcome" in row["note"]
    fitted = coefficients.filter(pl.col("std_error").is_not_null() & (pl.col("term") != "intercept"))
    assert fitted["estimate"].abs().max() < casemix.SEPARATION_LIMIT
    # the linear model keeps the level: it has variation in change_points
    assert coefficients.filter((pl.col("measure") == "plan_change_points")
                               & (pl.col("term") == "condition[shoulder_pain]"))["note"].item() is None


def test_a_sparse_level_is_collapsed_into_the_reference():
    sim = simulate(seed=3)
    few = sim["patients"].patient_key[20:32]  # 12 patients: under MIN_LEVEL_ROWS plans
    sim["patients"].loc[sim["patients"].patient_key.isin(few), "sex"] = "other"
    coefficients, _ = casemix.casemix_marts(warehouse(sim), MCID, MIN_PATIENTS)
    row = coefficients.filter((pl.col("measure") == "plan_change_points") & (pl.col("term") == "sex[other]")).row(0, named=True)
    assert row["note"].startswith("collapsed into the reference level: fewer than 30 rows")
    assert row["rows"] < casemix.MIN_LEVEL_ROWS


@pytest.mark.parametrize(("difference", "expected"), [
    (0.0, "inside"), (1.0, "inside"), (1.0 + 1e-12, "above_95"), (-1.0, "inside"), (-1.0 - 1e-12, "below_95"),
    (1.5, "inside" if False else "above_95"), (2.0, "above_95"), (2.0 + 1e-12, "above_998"), (-2.5, "below_998"),
])
def test_a_point_on_a_limit_is_inside(difference, expected):
    assert casemix.funnel_position(difference, 1.0, 2.0) == expected


def test_a_measure_without_variation_publishes_nothing_for_it():
    sim = simulate(seed=5, patients=200)
    sim["sessions"]["pain_after"] = sim["sessions"]["pain_before"]  # no session ever relieves
    coefficients, adjusted = casemix.casemix_marts(warehouse(sim), MCID, MIN_PATIENTS)
    assert "session_meaningful_relief" not in coefficients["measure"].to_list()
    assert "session_meaningful_relief" not in adjusted["measure"].to_list()
    assert "plan_change_points" in adjusted["measure"].to_list()


def test_empty_tables_give_empty_marts_with_their_columns():
    sim = simulate(patients=20)
    con = warehouse(sim)
    for table in ("core.sessions", "core.plans", "core.patients", "marts.plan_outcomes"):
        con.execute(f"delete from {table}")
    coefficients, adjusted = casemix.casemix_marts(con, MCID, MIN_PATIENTS)
    assert coefficients.height == adjusted.height == 0
    assert adjusted.columns[:11] == ["level", "unit_id", "measure", "n", "patients", "observed", "expected",
                                     "difference", "ci_low", "ci_high", "network_value"]
    assert "funnel" in adjusted.columns and coefficients.columns[:4] == ["measure", "term", "estimate", "std_error"]
