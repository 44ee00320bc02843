//! `Idempotency-Key` under concurrency: retries sent while the first attempt still runs wait for
//! it and get its response; the transition happens once.

use serde_json::json;

use super::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_retries_with_one_key_apply_once() {
    let s = spawn_server().await;
    s.xueji
        .create_school(school("s1", Some("东区")))
        .expect("s1");
    let student = enrolled(&s.xueji, "甲", 1);
    let url = format!("{}/v1/students/{}/transitions", s.base, student.id);
    let body =
        json!({"kind": "change_class", "effective_date": "2025-03-02", "params": {"class": "5"}});
    let attempts: Vec<_> = (0..8)
        .map(|_| {
            let request = s
                .client
                .post(&url)
                .bearer_auth(&s.admin)
                .header("Idempotency-Key", "retry-storm-1")
                .json(&body);
            tokio::spawn(async move {
                let resp = request.send().await.expect("send");
                let replayed = resp.headers().contains_key("idempotent-replay");
                let status = resp.status().as_u16();
                let v: serde_json::Value = resp.json().await.expect("json");
                (status, replayed, v["event"]["hash"].clone())
            })
        })
        .collect();
    let mut answers = Vec::new();
    for a in attempts {
        answers.push(a.await.expect("task"));
    }
    assert!(answers.iter().all(|(st, ..)| *st == 201), "{answers:?}");
    let first_hash = &answers[0].2;
    assert!(first_hash.is_string());
    assert!(
        answers.iter().all(|(_, _, h)| h == first_hash),
        "{answers:?}"
    );
    assert_eq!(
        answers.iter().filter(|(_, replayed, _)| !replayed).count(),
        1
    );
    let events = s.xueji.events(&student.id).expect("events");
    assert_eq!(
        events.len(),
        3,
        "admission, registration and one class change"
    );
}
