//! Batches' files and command line: the report (CSV/XLSX) and `xueji batch`. The batch engine
//! itself (selection, decisions, the job and its resumption) is `engine::batch`.

pub mod cli;
pub mod report;
