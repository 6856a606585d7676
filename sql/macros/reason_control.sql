-- Rejection reason for an identifier or code holding a control or bidirectional-formatting character (has_control):
-- names the column and the first such character as U+XXXX; the value is shown escaped, or withheld when it is
-- never stored (patient_id).
create or replace temp macro reason_control(column_name, value, withhold) as
    case
        when value is not null and has_control(value)
            then column_name || ': '
                || case when withhold then 'value withheld (never stored)' else shown_value(value) end
                || ' holds a control or bidirectional-formatting character ('
                || printf('U+%04X', unicode(regexp_extract(
                    value, '[\x00-\x1f\x7f-\x9f\x{061c}\x{200e}\x{200f}\x{202a}-\x{202e}\x{2066}-\x{2069}]'
                )))
                || ')'
    end
