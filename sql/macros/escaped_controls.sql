-- A value with each control or bidirectional-formatting character (has_control) written as <U+XXXX>, so that
-- no such character reaches a rejection reason, the warehouse or a report. Values without one are returned as
-- they are, without splitting them.
create or replace temp macro escaped_controls(value) as
    case
        when has_control(value) then array_to_string(
            list_transform(
                string_split(value, ''),
                lambda c: case when has_control(c) then printf('<U+%04X>', unicode(c)) else c end
            ),
            ''
        )
        else value
    end
