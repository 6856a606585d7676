-- Whether a value holds a C0 or C1 control character (NUL, tab and line breaks included), DEL, or a Unicode
-- bidirectional mark, embedding, override or isolate (U+061C, U+200E-U+200F, U+202A-U+202E, U+2066-U+2069):
-- characters that can hide or reorder what a report or a terminal shows. The same set as
-- clinic_outcomes.loading.discovery.CONTROL_CHARACTERS.
create or replace temp macro has_control(value) as
    regexp_matches(value, '[\x00-\x1f\x7f-\x9f\x{061c}\x{200e}\x{200f}\x{202a}-\x{202e}\x{2066}-\x{2069}]')
