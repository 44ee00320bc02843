//! The console in a real browser: Debian's chromium, driven through chromedriver by fantoccini.
//!
//! The test sets up what it needs on a fresh machine: it installs chromium, chromium-driver,
//! chromium-l10n and fonts-noto-cjk with apt-get when they are missing (once, under a file lock, so parallel test
//! processes do not race) and starts chromedriver on a free port itself. It never skips. One
//! browser session walks the whole story, which keeps the time it adds to CI small.
//!
//! `XUEJI_SCREENSHOTS=docs/console cargo test --test it browser::` writes the screenshots of the
//! main screens committed under `docs/console/` (they go to a temp folder otherwise).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::debian::install_debian_packages;
use crate::helpers::*;

/// How long an element may take to appear or change: a bound on a hang, far above what a page
/// takes even on a loaded 2-core machine (another test's build or server beside it).
const ELEMENT_LIMIT: Duration = Duration::from_secs(60);

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// Installed by fonts-noto-cjk: without it Chinese renders as boxes in the screenshots.
const CJK_FONT: &str = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc";
/// Installed by chromium-l10n: the browser's own words (date fields, file pickers) in Chinese.
const ZH_LOCALE: &str = "/usr/lib/chromium/locales/zh-CN.pak";
const PACKAGES: [&str; 4] = [
    "chromium",
    "chromium-driver",
    "chromium-l10n",
    "fonts-noto-cjk",
];

fn browser_missing() -> bool {
    [CHROMEDRIVER, CHROMIUM, CJK_FONT, ZH_LOCALE]
        .iter()
        .any(|p| !Path::new(p).exists())
}

/// Installs the browser, its driver and the CJK fonts when one is missing.
fn install_browser() {
    install_debian_packages("xueji-browser-install.lock", &PACKAGES, browser_missing);
    assert!(
        !browser_missing(),
        "chromium, chromedriver or the CJK fonts are still missing after apt-get install"
    );
}

/// chromedriver on a free port of 127.0.0.1, stopped when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            // Date fields and the browser's own words in Chinese, as a registrar sees them.
            .env("LANGUAGE", "zh_CN")
            .env("LANG", "zh_CN.UTF-8")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = Driver { child, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        driver
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A headless chromium session with a profile of its own.
async fn browser(driver: &Driver, profile: &Path) -> Client {
    let args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,1000",
        "--lang=zh-CN",
    ]
    .iter()
    .map(|a| (*a).to_owned())
    .chain([format!("--user-data-dir={}", profile.display())])
    .collect::<Vec<_>>();
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
    });
    let serde_json::Value::Object(caps) = caps else {
        unreachable!("an object")
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a browser session")
}

/// The page's visible story, step by step.
struct Story {
    c: Client,
    base: String,
    shots: PathBuf,
}

impl Story {
    async fn go(&self, path: &str) {
        self.c
            .goto(&format!("{}{path}", self.base))
            .await
            .expect("goto");
    }

    async fn el(&self, css: &str) -> fantoccini::elements::Element {
        match self
            .c
            .wait()
            .at_most(ELEMENT_LIMIT)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(e) => e,
            Err(e) => panic!("{css}: {e}\n{}", self.c.source().await.unwrap_or_default()),
        }
    }

    async fn text(&self, css: &str) -> String {
        self.el(css).await.text().await.unwrap_or_default()
    }

    async fn click(&self, css: &str) {
        self.el(css).await.click().await.expect("click");
    }

    async fn type_in(&self, css: &str, text: &str) {
        self.el(css).await.send_keys(text).await.expect("type");
    }

    /// Sets a field's value as a date picker would, and tells the page it changed.
    async fn set(&self, name: &str, value: &str) {
        self.c
            .execute(
                "const e = document.querySelector(`[name=\"${arguments[0]}\"]`); e.value = arguments[1]; e.dispatchEvent(new Event('change', {bubbles: true}));",
                vec![json!(name), json!(value)],
            )
            .await
            .expect("set a field");
    }

    /// Waits until an element's text is `want` (htmx swaps it in after the dry run).
    async fn wait_text(&self, css: &str, want: &str) {
        let deadline = Instant::now() + ELEMENT_LIMIT;
        loop {
            let got = match self.c.find(Locator::Css(css)).await {
                Ok(e) => e.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if got == want {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "{css}: wanted «{want}», saw «{got}»\n{}",
                    self.c.source().await.unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn sign_in(&self, token: &str) {
        self.go("/").await;
        self.type_in("#token", token).await;
        self.click("#sign-in").await;
        self.el("header nav").await;
    }

    async fn sign_out(&self) {
        self.click("header form button").await;
        self.el("#token").await;
    }

    /// A screenshot for `docs/console/`: taken again when chromium fails one (it has, once, on
    /// a loaded machine), since the picture documents the screen and the test is in the steps.
    async fn shot(&self, name: &str) {
        let mut tries = 1;
        let png = loop {
            match self.c.screenshot().await {
                Ok(png) => break png,
                Err(e) if tries < 3 => {
                    eprintln!("screenshot {name}, try {tries}: {e}");
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => panic!("screenshot {name}: {e}"),
            }
        };
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(self.shots.join(name), png).expect("write the screenshot");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspension_from_the_registrars_form_to_the_approved_timeline() {
    install_browser();
    let driver = Driver::start();
    let profile = tempfile::tempdir().expect("profile dir");
    let kept = std::env::var_os("XUEJI_SCREENSHOTS").map(PathBuf::from);
    let scratch = tempfile::tempdir().expect("screenshots dir");
    let shots = kept.clone().unwrap_or_else(|| scratch.path().to_owned());
    std::fs::create_dir_all(&shots).expect("screenshots dir");

    let s = spawn_server().await;
    s.xueji
        .create_school(xueji::domain::School {
            name: "沿河县第四完全小学".into(),
            ..school("s1", Some("东区"))
        })
        .expect("s1");
    for (seq, name) in [(21, "杨一帆"), (22, "张思睿"), (23, "冉小雨")] {
        enrolled(&s.xueji, name, seq);
    }
    let registrar = s
        .token(json!({"role": "registrar", "school": "s1", "label": "学籍管理员"}))
        .await;
    let leader = s
        .token(json!({"role": "school_leader", "school": "s1"}))
        .await;
    let county = s
        .token(json!({"role": "district_officer", "jurisdiction": "test-district", "area": "东区"}))
        .await;
    let city = s
        .token(json!({"role": "district_officer", "jurisdiction": "test-district"}))
        .await;

    let story = Story {
        c: browser(&driver, profile.path()).await,
        base: s.base.clone(),
        shots,
    };

    // The registrar signs in, admits and registers a student.
    story.go("/").await;
    story.shot("01-login.png").await;
    story.sign_in(&registrar).await;
    story.go("/console/students/new").await;
    story.type_in("[name=name]", "田小梅").await;
    story.set("birth_date", "2016-05-01").await;
    story
        .type_in("[name=id_card]", &id_card("2016-05-01", 30))
        .await;
    story.type_in("[name=grade]", "3").await;
    story.type_in("[name=class]", "4").await;
    story.set("entry_date", "2024-09-01").await;
    story.type_in("[name=guardian_name]", "田大山").await;
    story.type_in("[name=guardian_relation]", "父亲").await;
    story.type_in("[name=guardian_phone]", "13800000000").await;
    story.click("#admit").await;
    assert_eq!(story.text("#done").await, "已建立学籍。");
    story.click("#do-register").await;
    story.set("effective_date", "2024-09-02").await;
    story.wait_text("#outcome", "允许,提交后直接生效").await;
    story.click("#submit-transition").await;
    assert_eq!(story.text("#done").await, "已办理,历史已记录。");
    assert_eq!(story.text("#status").await, "在籍在校");
    let her_page = story.c.current_url().await.expect("url").path().to_owned();
    story.go("/console/students").await;
    story.shot("02-students.png").await;

    // A suspension: the dry run answers as the documents are chosen.
    story.go(&her_page).await;
    story.click("#do-suspend").await;
    story.set("effective_date", "2025-03-02").await;
    story.set("until", "2026-03-01").await;
    story.wait_text("#outcome", "不允许").await;
    assert!(story.text("#missing").await.contains("诊断"));
    story.click("#doc-hospital_diagnosis").await;
    story.wait_text("#outcome", "允许,须经审批").await;
    assert!(story.text("#route").await.contains("→"));
    story.shot("03-transition-dry-run.png").await;
    story.click("#submit-transition").await;
    assert_eq!(story.text("#done").await, "已提交审批,审批通过后生效。");

    // A pupil admitted under a temporary number is a problem record; the registrar confirms it
    // with a document, and the policy's answer appears beside the record.
    let (status, v) = s
        .call(
            "POST",
            "/v1/students",
            Some(&s.admin),
            Some(json!({
                "school": "s1", "name": "孙小雨", "gender": "female", "birth_date": "2017-03-08",
                "national_id": "L11010520170308AB12", "grade": 3, "class": "4",
                "entry_date": "2024-09-01",
            })),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    story.go("/console/problems?status=open").await;
    assert!(story.text(".problem .kind").await.contains("临时学籍号"));
    story
        .type_in(".problem [name=comment]", "户籍核实无误")
        .await;
    story.click(".problem button[type=submit]").await;
    story
        .wait_text(".problem .resolve-outcome", "政策不允许")
        .await;
    assert!(
        story
            .text(".problem .resolve-result")
            .await
            .contains("national_k12.problem.confirm")
    );
    story.click(".problem details summary").await;
    story
        .click(".problem [name=documents][value=household_register]")
        .await;
    story.click(".problem button[type=submit]").await;
    story
        .wait_text(".problem .resolve-outcome", "已办理,问题学籍已处理")
        .await;
    story.shot("09-problems.png").await;
    // The year's promotion tried first: each student's outcome in place, nothing stored.
    story.go("/console/batches").await;
    story.set("kind", "promote").await;
    story.set("effective_date", "2025-07-01").await;
    story.click("#dry-run").await;
    let report = story.text("#dry-run-report").await;
    assert!(
        report.contains("试算结果")
            && report.contains("可办理")
            && report.contains("田小梅")
            && report.contains("跳过"),
        "{report}"
    );
    story.shot("10-batch-dry-run.png").await;
    story.sign_out().await;

    // The principal approves the school's step from the inbox.
    story.sign_in(&leader).await;
    story.go("/console/inbox").await;
    story.type_in(".request [name=comment]", "同意休学").await;
    story.shot("04-inbox.png").await;
    story.click(".request button.approve").await;
    assert_eq!(story.text("#done").await, "已审批通过。");
    story.sign_out().await;

    // The county bureau approves its step; the timeline shows the suspension.
    story.sign_in(&county).await;
    story.go("/console/inbox").await;
    story.type_in(".request [name=comment]", "同意").await;
    story.click(".request button.approve").await;
    assert_eq!(story.text("#done").await, "已审批通过。");
    story.go("/console/students").await;
    story.type_in("[name=q]", "田小梅").await;
    story.click("#search").await;
    story.click("#students a").await;
    assert_eq!(story.text("#status").await, "休学");
    let timeline = story.text("#timeline").await;
    assert!(
        timeline.contains("休学") && timeline.contains("入学注册") && timeline.contains("第一条"),
        "{timeline}"
    );
    assert!(story.text("#chain").await.contains("校验通过"));
    story.shot("05-student-timeline.png").await;
    story.go("/console/stats?school=s1").await;
    story.el("#chart svg").await;
    story.shot("06-stats.png").await;
    story.sign_out().await;

    // The city bureau's impact view of a candidate that refuses suspensions.
    story.sign_in(&city).await;
    let candidate = profile.path().join("candidate.json");
    std::fs::write(&candidate, crate::console::impact_candidate().to_string()).expect("candidate");
    story.go("/console/policies/test-district").await;
    story
        .el("input[type=file][name=file]")
        .await
        .send_keys(&candidate.display().to_string())
        .await
        .expect("choose the file");
    story.click("#run-impact").await;
    let impact = story.text("#impact").await;
    assert!(
        impact.contains("会改变的决定 1 条") && impact.contains("不允许"),
        "{impact}"
    );
    story.shot("07-policy-impact.png").await;
    story
        .go("/console/policies/national-k12#rule-national_k12.suspend.until")
        .await;
    story.shot("08-rulebook.png").await;

    story.c.close().await.expect("close the browser");
}
