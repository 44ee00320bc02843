//! Issue #15, item 3: a transfer to a district on its own server. Two real `xueji` processes:
//! the sending one issues an Ed25519-signed certificate for an enrolment that ended by
//! `transfer_out`; the receiving one, once it trusts the sender's keys (`xueji trust add`),
//! admits on it exactly once, keeps the national number, decides `transfer_in` under its own
//! package and records the certificate's proof in the first event. An edited, untrusted or
//! replayed certificate, or one for a person live here, is refused with a code, nothing stored.

use serde_json::{Value, json};

use crate::process::{free_port, run_cli, serve, stop, text, wait_up};

const ADMIN: &str = "certificate-test-admin-token";

struct Server {
    base: String,
    client: reqwest::Client,
}

impl Server {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self
            .client
            .request(m, format!("{}{path}", self.base))
            .bearer_auth(ADMIN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Approves every step of a pending answer in order (as admin); the final answer.
    async fn settle(&self, (status, v): (u16, Value)) -> Value {
        match (status, v["outcome"].as_str()) {
            (201, Some("applied")) => v,
            (202, Some("pending")) => {
                let id = v["request"]["id"].as_str().expect("request id").to_owned();
                let mut last = v.clone();
                for step in v["request"]["steps"].as_array().expect("steps") {
                    let (status, answer) = self
                        .call(
                            "POST",
                            &format!("/v1/requests/{id}/approve"),
                            Some(json!({ "step": step["step"] })),
                        )
                        .await;
                    assert_eq!(status, 200, "{answer}");
                    last = answer;
                }
                assert_eq!(last["outcome"], "applied", "{last}");
                last
            }
            _ => panic!("not applied: {status} {v}"),
        }
    }

    async fn students(&self) -> usize {
        let (status, v) = self
            .call("GET", "/v1/students?jurisdiction=zhuhai-k12", None)
            .await;
        assert_eq!(status, 200, "{v}");
        v["items"].as_array().map_or(0, Vec::len)
    }
}

/// A Yanhe pupil enrolled, then transferred out of the system (transfer_out approved).
async fn transferred_out(a: &Server, name: &str, id_card: &str) -> String {
    let (status, v) = a
        .call(
            "POST",
            "/v1/students",
            Some(json!({"school": "yanhe-no4", "name": name, "gender": "female",
                "birth_date": format!("{}-{}-{}", &id_card[6..10], &id_card[10..12], &id_card[12..14]),
                "id_card": id_card, "grade": 3, "class": "4", "entry_date": "2026-09-01",
                "guardians": [{"name": "田大山", "relation": "父亲", "phone": "13800000000"}]})),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let id = v["student"]["id"].as_str().expect("id").to_owned();
    let answer = a
        .call(
            "POST",
            &format!("/v1/students/{id}/transitions"),
            Some(json!({"kind": "register", "effective_date": "2026-09-01",
                "documents": [{"kind": "guardian_signature"}]})),
        )
        .await;
    a.settle(answer).await;
    let answer = a
        .call(
            "POST",
            &format!("/v1/students/{id}/transitions"),
            Some(json!({"kind": "transfer_out", "effective_date": "2026-11-20",
                "reason": "household_move", "documents": [{"kind": "transfer_form"}, {"kind": "leave_survey"}]})),
        )
        .await;
    a.settle(answer).await;
    id
}

#[tokio::test]
async fn a_pupil_moves_between_two_servers_on_a_signed_certificate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (data_a, data_b) = (dir.path().join("a"), dir.path().join("b"));
    let client = reqwest::Client::new();
    let (port_a, port_b) = (free_port(), free_port());
    let mut server_a = serve(&data_a, port_a, ADMIN);
    let a = Server {
        base: format!("http://127.0.0.1:{port_a}"),
        client: client.clone(),
    };
    wait_up(&client, &a.base, &mut server_a).await;
    let (status, v) = a
        .call(
            "POST",
            "/v1/schools",
            Some(json!({"id": "yanhe-no4", "name": "沿河县第四完全小学", "jurisdiction": "yanhe-primary", "area": "沿河县", "level": "primary"})),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let pupil = transferred_out(&a, "田小梅", "52222820170308002X").await;
    let (status, signed) = a
        .call(
            "GET",
            &format!("/v1/students/{pupil}/transfer-certificate"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{signed}");
    let core = &signed["certificate"]["core"];
    assert_eq!(core["enrolment"]["status"], "transferred_out");
    let (_, sending_record) = a.call("GET", &format!("/v1/students/{pupil}"), None).await;
    assert_eq!(core["history_head"], sending_record["head"]);
    // A student still enrolled has no certificate.
    let (status, v) = a
        .call(
            "POST",
            "/v1/students",
            Some(json!({"school": "yanhe-no4", "name": "田小军", "gender": "male", "birth_date": "2017-05-12",
                "id_card": "52222820170512003X", "grade": 3, "entry_date": "2026-09-01"})),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let enrolled = v["student"]["id"].as_str().expect("id").to_owned();
    let (status, v) = a
        .call(
            "GET",
            &format!("/v1/students/{enrolled}/transfer-certificate"),
            None,
        )
        .await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (409, Some("not_transferred_out")),
        "{v}"
    );
    let (status, keys) = client
        .get(format!("{}/v1/keys", a.base))
        .send()
        .await
        .map(|r| (r.status().as_u16(), r))
        .expect("keys");
    assert_eq!(status, 200);
    let keys: Value = keys.json().await.expect("json");
    assert_eq!(keys["keys"][0]["key_id"], core["key_id"]);

    // The receiving server, first without trusting the sender.
    let mut server_b = serve(&data_b, port_b, ADMIN);
    let b = Server {
        base: format!("http://127.0.0.1:{port_b}"),
        client: client.clone(),
    };
    wait_up(&client, &b.base, &mut server_b).await;
    let (status, v) = b
        .call(
            "POST",
            "/v1/schools",
            Some(json!({"id": "zh-xz1", "name": "珠海市香洲区第一小学", "jurisdiction": "zhuhai-k12", "area": "香洲区", "level": "primary"})),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let admission = |certificate: &Value| {
        json!({"school": "zh-xz1", "grade": 3, "class": "1", "entry_date": "2026-11-23",
            "transfer_certificate": certificate})
    };
    let (status, v) = b
        .call("POST", "/v1/students", Some(admission(&signed)))
        .await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (422, Some("certificate_untrusted")),
        "{v}"
    );
    stop(server_b);
    let keys_file = dir.path().join("a-keys.json");
    std::fs::write(&keys_file, keys.to_string()).expect("write keys");
    let out = run_cli(&[
        "trust",
        "add",
        keys_file.to_str().expect("utf-8"),
        "--data",
        data_b.to_str().expect("utf-8"),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let mut server_b = serve(&data_b, port_b, ADMIN);
    wait_up(&client, &b.base, &mut server_b).await;

    // One byte edited (a name, a grade, the signature): refused, nothing stored.
    for edit in [
        ("/certificate/person/name", json!("田小兰")),
        ("/certificate/core/enrolment/grade", json!(4)),
        ("/certificate/core/history_head", json!("0".repeat(64))),
    ] {
        let mut edited = signed.clone();
        *edited.pointer_mut(edit.0).expect("field") = edit.1;
        let (status, v) = b
            .call("POST", "/v1/students", Some(admission(&edited)))
            .await;
        assert_eq!(
            (status, v["error"]["code"].as_str()),
            (422, Some("certificate_invalid")),
            "{}: {v}",
            edit.0
        );
    }
    assert_eq!(b.students().await, 0);

    // Intact and trusted: admitted under the same national number; Zhuhai's transfer_in decides.
    let answer = b
        .call("POST", "/v1/students", Some(admission(&signed)))
        .await;
    assert_eq!(answer.0, 202, "{}", answer.1);
    assert!(
        answer
            .1
            .to_string()
            .contains("national_k12.transfer_in.approval"),
        "{}",
        answer.1
    );
    // kill -9 while the receiving side's approvals are pending, then start again: the
    // admission and its request are there, and the certificate is spent (admitted once).
    server_b.kill().expect("kill -9");
    server_b.wait().expect("reaped");
    let mut server_b = serve(&data_b, port_b, ADMIN);
    wait_up(&client, &b.base, &mut server_b).await;
    let (status, v) = b
        .call("POST", "/v1/students", Some(admission(&signed)))
        .await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (422, Some("certificate_used")),
        "{v}"
    );
    assert_eq!(b.students().await, 1);
    let done = b.settle(answer).await;
    let admitted = done["request"]["student"].as_str().expect("id").to_owned();
    let (_, student) = b
        .call("GET", &format!("/v1/students/{admitted}"), None)
        .await;
    assert_eq!(
        (student["status"].as_str(), student["national_id"].as_str()),
        (Some("enrolled"), sending_record["national_id"].as_str())
    );
    // The first event carries the certificate's proof: where the record came from.
    let (_, events) = b
        .call("GET", &format!("/v1/students/{admitted}/events"), None)
        .await;
    let proof = &events["items"][0]["input"]["params"]["certificate"];
    assert_eq!(proof["core"]["history_head"], core["history_head"]);
    assert_eq!(proof["core"]["checkpoint"], core["checkpoint"]);
    assert!(proof["person_digest"].is_string() && proof["signature"] == signed["signature"]);
    assert!(
        !events.to_string().contains("52222820170308002X"),
        "no ID number in history"
    );
    let (status, v) = b.call("GET", "/v1/verify", None).await;
    assert_eq!((status, v["ok"].as_bool()), (200, Some(true)), "{v}");

    // Used once: the same certificate, or a fresh copy of it, is refused.
    let (status, v) = b
        .call("POST", "/v1/students", Some(admission(&signed)))
        .await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (422, Some("certificate_used")),
        "{v}"
    );
    let (_, copy) = a
        .call(
            "GET",
            &format!("/v1/students/{pupil}/transfer-certificate"),
            None,
        )
        .await;
    assert_ne!(copy["signature"], signed["signature"]);
    let (status, v) = b.call("POST", "/v1/students", Some(admission(&copy))).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (422, Some("certificate_used")),
        "{v}"
    );

    // A person already live on the receiving server is not admitted twice.
    let other = transferred_out(&a, "田小花", "522228201709010022").await;
    let (_, other_cert) = a
        .call(
            "GET",
            &format!("/v1/students/{other}/transfer-certificate"),
            None,
        )
        .await;
    let (status, v) = b
        .call(
            "POST",
            "/v1/students",
            Some(json!({"school": "zh-xz1", "name": "田小花", "gender": "female", "birth_date": "2017-09-01",
                "id_card": "522228201709010022", "grade": 3, "entry_date": "2026-11-02"})),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    // transfer_in by hand: only to finish an admission on a certificate.
    let ordinary = v["student"]["id"].as_str().expect("id").to_owned();
    let (status, v) = b
        .call(
            "POST",
            &format!("/v1/students/{ordinary}/transitions"),
            Some(json!({"kind": "transfer_in", "effective_date": "2026-11-23"})),
        )
        .await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (400, Some("invalid_value")),
        "{v}"
    );
    let before = b.students().await;
    let (status, v) = b
        .call("POST", "/v1/students", Some(admission(&other_cert)))
        .await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (422, Some("certificate_person_live")),
        "{v}"
    );
    assert_eq!(b.students().await, before);
    stop(server_b);
    stop(server_a);
}
