//! Rendering of measured rows: a Markdown table for people, JSON lines for scripts.

use serde::Serialize;

use crate::workloads::Row;

/// One row as a JSON line; a missing value is `null`.
#[derive(Debug, Serialize)]
struct JsonRow<'a> {
    workload: &'a str,
    variant: &'a str,
    value: Option<f64>,
    unit: &'a str,
    python: Option<f64>,
    raw: Option<f64>,
    bound: &'a str,
}

/// `row` as one line of JSON:
/// `{"workload":..,"variant":..,"value":..,"unit":..,"python":..,"raw":..,"bound":..}`.
pub fn json_line(row: &Row) -> String {
    let json = JsonRow {
        workload: row.workload,
        variant: &row.variant,
        value: row.value,
        unit: row.unit,
        python: row.python,
        raw: row.raw,
        bound: row.bound,
    };
    serde_json::to_string(&json).expect("a row always serializes")
}

const COLUMNS: usize = 8;

const HEADER: [&str; COLUMNS] = [
    "workload",
    "variant",
    "multiproc",
    "python",
    "raw",
    "vs python",
    "vs raw",
    "raw bound",
];

/// Which columns are numbers (right-aligned).
const NUMERIC: [bool; COLUMNS] = [false, false, true, true, true, true, true, false];

/// `rows` as a Markdown table, followed by a legend; cells without a value are `-`.
pub fn table(rows: &[Row]) -> String {
    let cells: Vec<[String; COLUMNS]> = rows
        .iter()
        .map(|row| {
            [
                row.workload.to_string(),
                row.variant.clone(),
                value_cell(row.value, row.unit),
                value_cell(row.python, row.unit),
                value_cell(row.raw, row.unit),
                ratio_cell(row.vs_python()),
                ratio_cell(row.vs_raw()),
                row.bound.to_string(),
            ]
        })
        .collect();

    let mut widths = HEADER.map(|h| h.chars().count());
    for line in &cells {
        for (width, cell) in widths.iter_mut().zip(line) {
            *width = (*width).max(cell.chars().count());
        }
    }

    let mut out = String::new();
    push_line(&mut out, &HEADER.map(String::from), &widths);
    let rule = widths
        .iter()
        .zip(NUMERIC)
        .map(|(&w, numeric)| {
            if numeric {
                format!("{}:", "-".repeat(w + 1))
            } else {
                "-".repeat(w + 2)
            }
        })
        .collect::<Vec<_>>()
        .join("|");
    out.push_str(&format!("|{rule}|\n"));
    for line in &cells {
        push_line(&mut out, line, &widths);
    }
    out.push_str(
        "\nvs python: how many times faster than Python's multiprocessing (> 1 = multiproc wins)\n\
         vs raw: multiproc's cost over the raw OS bound (1.0 = at the bound)\n\
         raw bound: what the raw column measured (see bench/README.md)\n",
    );
    out
}

fn push_line(out: &mut String, cells: &[String; COLUMNS], widths: &[usize; COLUMNS]) {
    out.push('|');
    for ((cell, &width), numeric) in cells.iter().zip(widths).zip(NUMERIC) {
        if numeric {
            out.push_str(&format!(" {cell:>width$} |"));
        } else {
            out.push_str(&format!(" {cell:<width$} |"));
        }
    }
    out.push('\n');
}

fn value_cell(value: Option<f64>, unit: &str) -> String {
    match value {
        Some(v) => format!("{} {unit}", number(v)),
        None => "-".to_string(),
    }
}

fn ratio_cell(ratio: Option<f64>) -> String {
    match ratio {
        Some(r) if r >= 10.0 => format!("{r:.1}×"),
        Some(r) => format!("{r:.2}×"),
        None => "-".to_string(),
    }
}

/// About four significant digits, without scientific notation.
fn number(v: f64) -> String {
    let magnitude = v.abs();
    if magnitude >= 1000.0 {
        format!("{v:.0}")
    } else if magnitude >= 100.0 {
        format!("{v:.1}")
    } else if magnitude >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workloads::Better;

    fn row() -> Row {
        Row {
            workload: "start_join",
            variant: "fork".into(),
            unit: "us/op",
            better: Better::Lower,
            value: Some(50.0),
            python: Some(1234.0),
            raw: None,
            bound: "fork+wait",
        }
    }

    #[test]
    fn json_has_nulls_for_missing_values() {
        assert_eq!(
            json_line(&row()),
            r#"{"workload":"start_join","variant":"fork","value":50.0,"unit":"us/op","python":1234.0,"raw":null,"bound":"fork+wait"}"#
        );
    }

    #[test]
    fn table_shows_values_units_and_ratios() {
        let t = table(&[row()]);
        let line = t.lines().nth(2).unwrap();
        assert!(line.contains("50.00 us/op"), "{line}");
        assert!(line.contains("1234 us/op"), "{line}");
        assert!(line.contains("24.7×"), "{line}");
        assert!(line.contains(" - |"), "{line}");
        assert!(line.ends_with("| fork+wait |"), "{line}");
    }

    #[test]
    fn numbers_keep_about_four_digits() {
        assert_eq!(number(12345.6), "12346");
        assert_eq!(number(123.45), "123.5");
        assert_eq!(number(1.2345), "1.23");
        assert_eq!(number(0.012345), "0.012");
        assert_eq!(ratio_cell(Some(123.44)), "123.4×");
        assert_eq!(ratio_cell(Some(1.5)), "1.50×");
    }
}
