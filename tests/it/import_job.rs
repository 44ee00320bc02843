//! Several files imported as one job (`import_files`, `xueji import FILE...`): each file on its own
//! terms, in order, the next checked while the previous is stored, duplicates across files
//! refused.

use xueji::domain::{FieldError, InvalidInput};
use xueji::engine::import::{ImportOptions, ImportReport, import_files};
use xueji::engine::{Result, ServiceError};

use super::helpers::*;

/// A CSV of students at s1, one per ID sequence number.
fn csv(seqs: impl IntoIterator<Item = u32>) -> Vec<u8> {
    let mut out = String::from(
        "school,name,gender,birth_date,id_card,grade,class,entry_date,guardian_name,guardian_relation,guardian_phone\n",
    );
    for seq in seqs {
        let id = id_card("2016-05-01", seq);
        let gender = if (id.as_bytes()[16] - b'0') % 2 == 1 {
            "男"
        } else {
            "女"
        };
        out.push_str(&format!(
            "s1,学生{seq},{gender},2016-05-01,{id},3,4,2024-09-01,家长{seq},母亲,13800001234\n"
        ));
    }
    out.into_bytes()
}

fn run(
    x: &xueji::engine::Xueji,
    files: Vec<Result<Vec<u8>>>,
) -> Vec<(usize, Result<ImportReport>)> {
    let mut reports = Vec::new();
    import_files(
        x,
        files,
        &ImportOptions::default(),
        &registrar(),
        &|_| true,
        |i, r| reports.push((i, r)),
    )
    .expect("no storage failure");
    reports
}

#[test]
fn each_file_of_a_job_is_stored_on_its_own_terms_and_in_order() {
    let t = engine();
    let unreadable: Result<Vec<u8>> = Err(ServiceError::from(InvalidInput::from(FieldError::new(
        "unreadable_file",
        "file",
        "读取失败",
    ))));
    let reports = run(
        &t.xueji,
        vec![
            Ok(csv(1..=300)),
            // Its row 3 (the second student) is the first file's student 150.
            Ok(csv([400, 150, 401])),
            unreadable,
            Ok(csv(500..=799)),
        ],
    );
    let order: Vec<usize> = reports.iter().map(|(i, _)| *i).collect();
    assert_eq!(order, [0, 1, 2, 3]);
    let ok = |i: usize| match &reports[i].1 {
        Ok(r) => r.clone(),
        Err(e) => panic!("file {i}: {e}"),
    };
    let (first, second, fourth) = (ok(0), ok(1), ok(3));
    assert!(first.ok && first.stored == 300, "{first:?}");
    assert!(
        !second.ok && second.stored == 0,
        "nothing of a failing file is stored"
    );
    let dup = &second.rows[1];
    assert_eq!(dup.row, 3);
    assert_eq!(dup.errors[0].code, "duplicate_in_import");
    assert!(
        dup.errors[0].message.contains("第 1 个文件第 151 行"),
        "{}",
        dup.errors[0].message
    );
    assert!(
        second.rows[0].ok && second.rows[2].ok,
        "the other rows were valid"
    );
    assert!(matches!(&reports[2].1, Err(e) if e.to_string().contains("读取失败")));
    assert!(
        fourth.ok && fourth.stored == 300,
        "the job goes on after a failed file"
    );

    let ids = t.xueji.store().all_student_ids().expect("ids");
    assert_eq!(ids.len(), 600);
    let reported: std::collections::BTreeSet<String> = [&first, &fourth]
        .iter()
        .flat_map(|r| r.rows.iter().filter_map(|row| row.student.clone()))
        .collect();
    assert_eq!(reported, ids.into_iter().collect());
    assert!(t.xueji.verify_all().expect("verify").ok);
}

#[test]
fn a_file_repeating_a_student_of_an_earlier_failed_file_is_not_refused_for_it() {
    let t = engine();
    // The first file fails (a bad gender), so nothing of it is stored or claimed.
    let mut bad = String::from_utf8(csv(1..=3)).expect("utf8");
    bad = bad
        .replacen(",男,", ",未知,", 1)
        .replacen(",女,", ",未知,", 1);
    let reports = run(&t.xueji, vec![Ok(bad.into_bytes()), Ok(csv(1..=3))]);
    let first = reports[0].1.as_ref().expect("read");
    assert!(!first.ok && first.stored == 0, "{first:?}");
    let second = reports[1].1.as_ref().expect("read");
    assert!(second.ok && second.stored == 3, "{second:?}");
    assert_eq!(t.xueji.store().all_student_ids().expect("ids").len(), 3);
}
