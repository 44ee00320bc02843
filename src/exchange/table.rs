//! Tables in and out: the columns rosters write and imports read, CSV (UTF-8 with BOM) and XLSX.

use std::io::Cursor;

use super::{FileFormat, invalid};
use crate::engine::{Result, ServiceError};

/// The byte-order mark Excel needs to open a UTF-8 CSV with Chinese text correctly.
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Largest number of data rows an import accepts.
pub const MAX_ROWS: usize = 20_000;

/// A column of a roster or an import file: its field name (English, as in the JSON API) and the
/// Chinese header rosters write. Imports accept either, plus the aliases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Column {
    NationalId,
    Name,
    Gender,
    BirthDate,
    IdCard,
    School,
    Grade,
    Class,
    Status,
    EntryDate,
    ReportDeadline,
    GuardianName,
    GuardianRelation,
    GuardianPhone,
    LeftOn,
    Student,
}

impl Column {
    /// The field name (JSON key, English header).
    pub fn field(self) -> &'static str {
        use Column::*;
        match self {
            NationalId => "national_id",
            Name => "name",
            Gender => "gender",
            BirthDate => "birth_date",
            IdCard => "id_card",
            School => "school",
            Grade => "grade",
            Class => "class",
            Status => "status",
            EntryDate => "entry_date",
            ReportDeadline => "report_deadline",
            GuardianName => "guardian_name",
            GuardianRelation => "guardian_relation",
            GuardianPhone => "guardian_phone",
            LeftOn => "left_on",
            Student => "student",
        }
    }

    /// The Chinese header rosters write.
    pub fn zh(self) -> &'static str {
        use Column::*;
        match self {
            NationalId => "学籍号",
            Name => "姓名",
            Gender => "性别",
            BirthDate => "出生日期",
            IdCard => "身份证号",
            School => "学校编号",
            Grade => "年级",
            Class => "班级",
            Status => "学籍状态",
            EntryDate => "入学日期",
            ReportDeadline => "报到截止日期",
            GuardianName => "监护人姓名",
            GuardianRelation => "监护人关系",
            GuardianPhone => "监护人电话",
            LeftOn => "毕(结、肄)业日期",
            Student => "系统编号",
        }
    }

    /// Further headers an import accepts for the column.
    fn aliases(self) -> &'static [&'static str] {
        use Column::*;
        match self {
            NationalId => &["全国学籍号", "全国学籍号码"],
            Name => &["学生姓名"],
            IdCard => &["身份证件号", "身份证号码", "身份证件号码"],
            School => &["学校", "学校代码"],
            Status => &["status_zh", "状态"],
            LeftOn => &["毕业日期", "离校日期"],
            Student => &["学生编号", "id"],
            _ => &[],
        }
    }

    /// Columns an import reads into the student form; the others (status, system id, leaving
    /// date) are what a roster adds, and an import ignores them.
    pub fn imported(self) -> bool {
        !matches!(self, Column::Status | Column::LeftOn | Column::Student)
    }

    pub const ALL: [Column; 16] = [
        Column::NationalId,
        Column::Name,
        Column::Gender,
        Column::BirthDate,
        Column::IdCard,
        Column::School,
        Column::Grade,
        Column::Class,
        Column::Status,
        Column::EntryDate,
        Column::ReportDeadline,
        Column::GuardianName,
        Column::GuardianRelation,
        Column::GuardianPhone,
        Column::LeftOn,
        Column::Student,
    ];

    /// The column a header names (Chinese, English field name or alias), ignoring case and
    /// surrounding spaces.
    pub fn from_header(header: &str) -> Option<Column> {
        let h = header.trim().trim_start_matches('\u{feff}').trim();
        let lower = h.to_ascii_lowercase();
        Column::ALL
            .into_iter()
            .find(|c| c.field() == lower || c.zh() == h || c.aliases().contains(&h))
    }
}

/// A cell as rosters write it: text, or a number (grades).
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    Number(f64),
}

impl Cell {
    fn text(&self) -> String {
        match self {
            Cell::Text(s) => s.clone(),
            Cell::Number(n) => format_number(*n),
        }
    }
}

fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}

/// Keeps a spreadsheet from reading a text cell as a formula (CSV injection): a cell starting
/// with `=`, `+`, `-` or `@` gets a leading apostrophe, which [`unescape`] removes on import.
pub fn escape(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_owned()
    }
}

/// Inverse of [`escape`].
pub fn unescape(s: &str) -> &str {
    match s.strip_prefix('\'') {
        Some(rest) if rest.starts_with(['=', '+', '-', '@']) => rest,
        _ => s,
    }
}

/// A CSV file: UTF-8 with a BOM, one header row, CRLF line ends (what Excel writes).
pub fn write_csv(headers: &[&str], rows: &[Vec<Cell>]) -> Result<Vec<u8>> {
    let mut out = BOM.to_vec();
    {
        let mut w = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .from_writer(&mut out);
        let fail = |e: csv::Error| ServiceError::Storage(format!("csv: {e}"));
        w.write_record(headers).map_err(fail)?;
        for row in rows {
            w.write_record(row.iter().map(|c| match c {
                Cell::Text(s) => escape(s),
                Cell::Number(_) => c.text(),
            }))
            .map_err(fail)?;
        }
        w.flush()
            .map_err(|e| ServiceError::Storage(format!("csv: {e}")))?;
    }
    Ok(out)
}

/// An XLSX workbook of one sheet: a bold, frozen header row; text cells stay text (ID numbers
/// would otherwise lose digits), grades are numbers.
pub fn write_xlsx(sheet: &str, headers: &[&str], rows: &[Vec<Cell>]) -> Result<Vec<u8>> {
    use rust_xlsxwriter::{Format, Workbook};
    let fail = |e: rust_xlsxwriter::XlsxError| ServiceError::Storage(format!("xlsx: {e}"));
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name(sheet).map_err(fail)?;
    let bold = Format::new().set_bold();
    let mut widths: Vec<usize> = headers.iter().map(|h| display_width(h)).collect();
    for (c, h) in headers.iter().enumerate() {
        ws.write_string_with_format(0, col(c), *h, &bold)
            .map_err(fail)?;
    }
    for (r, row) in rows.iter().enumerate() {
        let r = u32::try_from(r + 1).map_err(|_| ServiceError::Storage("too many rows".into()))?;
        for (c, cell) in row.iter().enumerate() {
            match cell {
                Cell::Text(s) if s.is_empty() => {}
                Cell::Text(s) => {
                    ws.write_string(r, col(c), s).map_err(fail)?;
                }
                Cell::Number(n) => {
                    ws.write_number(r, col(c), *n).map_err(fail)?;
                }
            }
            if let Some(w) = widths.get_mut(c) {
                *w = (*w).max(display_width(&cell.text()));
            }
        }
    }
    for (c, w) in widths.iter().enumerate() {
        ws.set_column_width(col(c), (*w as f64 + 2.0).min(60.0))
            .map_err(fail)?;
    }
    ws.set_freeze_panes(1, 0).map_err(fail)?;
    wb.save_to_buffer().map_err(fail)
}

fn col(c: usize) -> u16 {
    u16::try_from(c).unwrap_or(u16::MAX)
}

/// Width in Excel character units: CJK characters take two.
fn display_width(s: &str) -> usize {
    s.chars().map(|c| if c.is_ascii() { 1 } else { 2 }).sum()
}

/// A table read from a file: its header row and its data rows with their row numbers as a
/// spreadsheet shows them (the header is row 1). Blank rows are skipped.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub headers: Vec<String>,
    pub rows: Vec<(usize, Vec<String>)>,
}

pub fn read(bytes: &[u8], format: FileFormat) -> Result<Table> {
    let table = match format {
        FileFormat::Csv => read_csv(bytes)?,
        FileFormat::Xlsx => read_xlsx(bytes)?,
    };
    if table.headers.iter().all(|h| h.trim().is_empty()) {
        return Err(invalid("empty_file", "file", "文件为空:第一行应为表头"));
    }
    if table.rows.len() > MAX_ROWS {
        return Err(invalid(
            "too_many_rows",
            "file",
            format!(
                "一次最多导入 {MAX_ROWS} 行,文件有 {} 行:请分批导入",
                table.rows.len()
            ),
        ));
    }
    Ok(table)
}

/// The text of a CSV file: UTF-8 (with or without BOM), or GBK as Excel saves "CSV" on a
/// Chinese Windows (decoded as GB 18030, its superset). Bytes that are neither are refused
/// rather than guessed at.
fn csv_text(bytes: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>> {
    let bytes = bytes.strip_prefix(BOM).unwrap_or(bytes);
    if std::str::from_utf8(bytes).is_ok() {
        return Ok(std::borrow::Cow::Borrowed(bytes));
    }
    match encoding_rs::GB18030.decode_without_bom_handling_and_without_replacement(bytes) {
        Some(text) => Ok(std::borrow::Cow::Owned(text.into_owned().into_bytes())),
        None => Err(invalid(
            "invalid_encoding",
            "file",
            "CSV 文件须为 UTF-8 或 GBK 编码(Excel 中另存为「CSV UTF-8」),或直接上传 XLSX 文件",
        )),
    }
}

fn read_csv(bytes: &[u8]) -> Result<Table> {
    let text = csv_text(bytes)?;
    let bytes: &[u8] = &text;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut headers = None;
    let mut rows = Vec::new();
    let mut lines = LineCounter::new(bytes);
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| {
            invalid(
                "invalid_csv",
                "file",
                format!("CSV 第 {} 行格式错误:{e}", i + 1),
            )
        })?;
        let cells: Vec<String> = record.iter().map(|c| c.trim().to_owned()).collect();
        if headers.is_none() {
            headers = Some(cells);
        } else if cells.iter().any(|c| !c.is_empty()) {
            let start = record
                .position()
                .and_then(|p| usize::try_from(p.byte()).ok())
                .unwrap_or(0);
            rows.push((lines.line_at(start), cells));
        }
        if rows.len() > MAX_ROWS {
            break;
        }
    }
    Ok(Table {
        headers: headers.unwrap_or_default(),
        rows,
    })
}

/// Line numbers of byte offsets, for offsets that only move forward (records in file order).
struct LineCounter<'a> {
    bytes: &'a [u8],
    offset: usize,
    line: usize,
}

impl<'a> LineCounter<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        LineCounter {
            bytes,
            offset: 0,
            line: 1,
        }
    }

    /// The line a record starting at `start` is on; line ends (and so blank lines) just before
    /// the record are skipped, as a record's reported start may precede them.
    fn line_at(&mut self, start: usize) -> usize {
        let mut s = start.max(self.offset);
        while matches!(self.bytes.get(s), Some(b'\n' | b'\r')) {
            s += 1;
        }
        let end = s.min(self.bytes.len());
        self.line += self.bytes[self.offset.min(end)..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count();
        self.offset = end;
        self.line
    }
}

fn read_xlsx(bytes: &[u8]) -> Result<Table> {
    use calamine::{Reader, Xlsx};
    let unreadable = |e: String| invalid("invalid_xlsx", "file", format!("无法读取 XLSX 文件:{e}"));
    let mut wb: Xlsx<_> = Xlsx::new(Cursor::new(bytes)).map_err(|e| unreadable(e.to_string()))?;
    let range = match wb.worksheet_range_at(0) {
        Some(r) => r.map_err(|e| unreadable(e.to_string()))?,
        None => return Err(unreadable("没有工作表".into())),
    };
    let first_row = range.start().map_or(0, |(r, _)| r as usize);
    let first_col = range.start().map_or(0, |(_, c)| c as usize);
    let mut headers = None;
    let mut rows = Vec::new();
    for (i, row) in range.rows().enumerate() {
        let mut cells: Vec<String> = vec![String::new(); first_col];
        cells.extend(row.iter().map(cell_text));
        let line = first_row + i + 1;
        if headers.is_none() {
            if cells.iter().any(|c| !c.is_empty()) {
                headers = Some((line, cells));
            }
        } else if cells.iter().any(|c| !c.is_empty()) {
            rows.push((line, cells));
        }
        if rows.len() > MAX_ROWS {
            break;
        }
    }
    Ok(Table {
        headers: headers.map(|(_, h)| h).unwrap_or_default(),
        rows,
    })
}

/// A cell as text: numbers without a trailing `.0`, dates as `YYYY-MM-DD`.
fn cell_text(d: &calamine::Data) -> String {
    use calamine::Data;
    match d {
        Data::Empty => String::new(),
        Data::String(s) => s.trim().to_owned(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) => format_number(*f),
        Data::Bool(b) => b.to_string(),
        Data::DateTime(dt) if dt.is_datetime() => {
            let (y, m, d, ..) = dt.to_ymd_hms_milli();
            format!("{y:04}-{m:02}-{d:02}")
        }
        Data::DateTime(dt) => format_number(dt.as_f64()),
        Data::DateTimeIso(s) => s.chars().take(10).collect(),
        Data::DurationIso(s) => s.clone(),
        Data::Error(e) => format!("#{e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_in_either_language() {
        assert_eq!(Column::from_header("学籍号"), Some(Column::NationalId));
        assert_eq!(Column::from_header(" Birth_Date "), Some(Column::BirthDate));
        assert_eq!(Column::from_header("\u{feff}姓名"), Some(Column::Name));
        assert_eq!(Column::from_header("学校"), Some(Column::School));
        assert_eq!(Column::from_header("身高"), None);
    }

    #[test]
    fn csv_round_trip_with_bom_and_formula_escape() {
        let rows = vec![vec![
            Cell::Text("=1+1".into()),
            Cell::Number(3.0),
            Cell::Text("a,\"b\"".into()),
        ]];
        let bytes = write_csv(&["姓名", "年级", "班级"], &rows).unwrap_or_default();
        assert!(bytes.starts_with(BOM));
        let t = read(&bytes, FileFormat::Csv).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.headers, vec!["姓名", "年级", "班级"]);
        assert_eq!(t.rows[0].0, 2);
        assert_eq!(unescape(&t.rows[0].1[0]), "=1+1");
        assert_eq!(t.rows[0].1[1], "3");
        assert_eq!(t.rows[0].1[2], "a,\"b\"");
    }

    #[test]
    fn xlsx_round_trip() {
        let rows = vec![vec![Cell::Text("张三".into()), Cell::Number(2.0)]];
        let bytes = write_xlsx("在校生名册", &["姓名", "年级"], &rows).unwrap_or_default();
        assert_eq!(FileFormat::sniff(&bytes), FileFormat::Xlsx);
        let t = read(&bytes, FileFormat::Xlsx).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.headers, vec!["姓名", "年级"]);
        assert_eq!(t.rows, vec![(2, vec!["张三".to_owned(), "2".to_owned()])]);
    }

    #[test]
    fn row_numbers_are_lines_as_a_spreadsheet_shows_them() {
        let t =
            read(b"name,grade\n\na,1\n,\nb,2\n", FileFormat::Csv).unwrap_or_else(|e| panic!("{e}"));
        let lines: Vec<usize> = t.rows.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, vec![3, 5]);
    }

    #[test]
    fn gbk_is_read_as_excel_saves_it_on_chinese_windows() {
        let (gbk, _, _) = encoding_rs::GBK.encode("姓名,年级\n田小梅,3\n");
        let t = read(&gbk, FileFormat::Csv).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.rows.len(), 1);
        assert_eq!(t.rows[0].1, vec!["田小梅".to_owned(), "3".to_owned()]);
    }

    #[test]
    fn neither_utf8_nor_gbk_is_refused_with_a_hint() {
        let e = read(b"\xff\xfe\xff name\n", FileFormat::Csv)
            .err()
            .map(|e| e.to_string());
        assert!(e.is_some_and(|m| m.contains("invalid_encoding") && m.contains("GBK")));
    }
}
