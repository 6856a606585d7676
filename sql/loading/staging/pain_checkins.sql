-- Type one night's check-in rows and give each row its rejection reasons (null: the row loads).
-- recorded_at keeps both readings until core, where a naive time is read in the zone of the patient's latest plan.
-- inputs (temp tables and views Python or an earlier file fills; tests/test_sql_inputs.py checks them):
--   incoming_pain_checkins: checkin_id, patient_id, recorded_at, pain, channel, _drop, _file_id, _line
--   patient_keys: patient_id, patient_key
create or replace temp table staged_pain_checkins as
with
first_rows as (
    select _file_id, min(rowid) as first_rowid from incoming_pain_checkins group by _file_id
),

source as (
    -- CSV rows were appended in file order: a row's line is its place in its file + 1 (the header).
    -- Physical line numbers for files with a rejection are settled after staging (blank lines, multi-line fields).
    select
        incoming.* exclude (_line),
        coalesce(incoming._line, incoming.rowid - first_rows.first_rowid + 2) as _line,
    from incoming_pain_checkins as incoming
    inner join first_rows on first_rows._file_id = incoming._file_id
),

typed as (
    select
        source.*,
        ts_instant(recorded_at) as recorded_at_instant,
        ts_local(recorded_at) as recorded_at_local,
    from source
),

checked as (
    select
        typed.*,
        -- every reason of the row, '; '-separated (concat_ws skips the checks that pass); null: the row loads
        nullif(concat_ws('; ',
            reason_missing('checkin_id', checkin_id),
            reason_control('checkin_id', checkin_id, false),
            reason_missing('patient_id', patient_id),
            reason_control('patient_id', patient_id, true),
            reason_missing('recorded_at', recorded_at),
            reason_timestamp_parsed('recorded_at', recorded_at, recorded_at_instant, recorded_at_local),
            reason_missing('pain', pain),
            reason_int('pain', pain, 0, 10),
            reason_enum('channel', channel, seed_channels())
        ), '') as _reasons,
    from typed
),

final as (
    select
        trimmed(checked.checkin_id) as checkin_id,
        patient_keys.patient_key as patient_key,
        checked.recorded_at_instant as recorded_at_instant,
        checked.recorded_at_local as recorded_at_local,
        try_cast(trimmed(checked.pain) as integer) as pain,
        lower(trimmed(checked.channel)) as channel,
        checked._drop as _drop,
        checked._file_id as _file_id,
        checked._line as _line,
        checked._reasons as _reasons,
        case when checked._reasons is not null then to_json(struct_pack(
            checkin_id := checked.checkin_id,
            patient_key := patient_keys.patient_key,
            recorded_at := checked.recorded_at,
            pain := checked.pain,
            channel := checked.channel
        )) end as _record,
    from checked
    left join patient_keys on patient_keys.patient_id = trimmed(checked.patient_id)
)

select * from final
