//! A batch's report as a file: CSV (UTF-8 with BOM) or XLSX, Chinese headers, one row per
//! student, through the writers rosters use (`exchange::table`).

use crate::domain::TransitionKind;
use crate::engine::Result;
use crate::engine::batch::BatchItem;
use crate::exchange::FileFormat;
use crate::exchange::table::{Cell, write_csv, write_xlsx};

/// The report's columns.
pub const HEADERS: [&str; 11] = [
    "序号",
    "学生编号",
    "姓名",
    "年级",
    "班级",
    "结果",
    "原因",
    "规则",
    "依据",
    "缺少材料",
    "申请编号",
];

fn row(place: usize, item: &BatchItem) -> Vec<Cell> {
    let text = |s: &str| Cell::Text(s.to_owned());
    let join = |v: Vec<&str>| Cell::Text(v.join(";"));
    vec![
        Cell::Number((place + 1) as f64),
        text(&item.student),
        text(&item.name),
        Cell::Number(f64::from(item.grade)),
        text(item.class.as_deref().unwrap_or("")),
        text(item.outcome.zh()),
        text(item.reason.as_deref().unwrap_or("")),
        join(item.rules.iter().map(|r| r.id.as_str()).collect()),
        join(item.rules.iter().map(|r| r.citation.as_str()).collect()),
        join(item.missing_documents.iter().map(String::as_str).collect()),
        text(item.request.as_deref().unwrap_or("")),
    ]
}

/// The report file of `items` (in place order).
pub fn to_file<'a>(
    kind: TransitionKind,
    items: impl IntoIterator<Item = (usize, &'a BatchItem)>,
    format: FileFormat,
) -> Result<Vec<u8>> {
    let rows: Vec<Vec<Cell>> = items.into_iter().map(|(p, i)| row(p, i)).collect();
    match format {
        FileFormat::Csv => write_csv(&HEADERS, &rows),
        FileFormat::Xlsx => write_xlsx(&format!("批量{}", kind.zh()), &HEADERS, &rows),
    }
}

/// The file's name: `批量升级-<batch>.csv`.
pub fn file_name(kind: TransitionKind, batch: &str, format: FileFormat) -> String {
    format!("批量{}-{batch}.{}", kind.zh(), format.extension())
}
