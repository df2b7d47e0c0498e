//! One problem found in a scenario: the field it is about (a path such as `players[0].ramp`,
//! which the loader turns into a line and column), what is wrong, and how to fix it. Every check
//! (`validate`, the `[kube]`, `[[fault]]` and `[distributed]` sections) reports these.

#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub field: String,
    pub message: String,
    pub hint: Option<String>,
}

pub(super) fn problem(
    field: impl Into<String>,
    message: impl Into<String>,
    hint: Option<&str>,
) -> Problem {
    Problem {
        field: field.into(),
        message: message.into(),
        hint: hint.map(str::to_string),
    }
}
